"""The house rules that a reader of the tree relies on: the gRPC edge knows only its one downstream, and no module
in ``sidecar/`` is too long to read in one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sidecar"

MAX_LINES = 450
"""A module past this many lines usually holds two ideas (STYLE.md)."""

FORBIDDEN_FROM_API = ("sidecar.delivery", "sidecar.send", "sidecar.spool", "sidecar.enrich")


def modules() -> list[Path]:
    """Every Python module of the package, generated stubs excluded."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.relative_to(PACKAGE).parts)


def imported(path: Path) -> set[str]:
    """The sidecar modules a file imports (absolute names; relative imports resolved)."""
    return imported_by(path.read_text(encoding="utf-8"), ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]))


def imported_by(source: str, package: str) -> set[str]:
    """The sidecar modules a module of ``package`` with this source imports."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "sidecar" or name.startswith("sidecar.")}


def test_the_grpc_edge_imports_no_later_stage() -> None:
    """Nothing in sidecar/api/ imports delivery/, send/, spool/ or enrich/: the edge has exactly one downstream."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((PACKAGE / "api").rglob("*.py"))
        for name in sorted(imported(path))
        if name.startswith(FORBIDDEN_FROM_API)
    ]
    assert not offenders, offenders


def test_the_import_check_sees_a_forbidden_import() -> None:
    """The checker itself finds absolute and relative imports of a later stage (so the rule can fail)."""
    names = imported_by("from sidecar.spool import Spool\nfrom ..send import http\nimport grpc\n", "sidecar.api")
    assert "sidecar.spool" in names and "sidecar.send.http" in names


def test_no_module_is_over_450_lines() -> None:
    """Every module in sidecar/ (generated _proto excluded) has at most 450 lines, no exceptions."""
    too_long = []
    for path in modules():
        name = str(path.relative_to(ROOT))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, too_long


HISTORY = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
"""An issue number in a comment tells the code's history, which belongs in git and the CHANGELOG."""


def test_no_comment_in_sidecar_tells_history() -> None:
    """No module of sidecar/ names an issue number: comments explain the code as it is."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if HISTORY.search(line)
    ]
    assert not found, found


def test_no_background_task_is_started_outside_the_supervisor() -> None:
    """Every background task runs under sidecar/tasks.py's Supervisor: no create_task or ensure_future elsewhere."""
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in modules()
        if path.name != "tasks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "create_task(" in line or "ensure_future(" in line
    ]
    assert not found, found


def test_nothing_in_send_calls_up_into_delivery() -> None:
    """The senders (sidecar/send/) import nothing from sidecar/delivery/: the dispatcher hands them what they need."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((PACKAGE / "send").rglob("*.py"))
        for name in sorted(imported(path))
        if name.startswith("sidecar.delivery")
    ]
    assert not offenders, offenders
