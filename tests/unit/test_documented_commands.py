"""scripts/check_documented_commands.py finds the commands documents show and rejects those that cannot work as
written; the repository's own documents pass its static checks (``make test`` also runs their quick commands,
except the benchmarks' smoke runs, which ``make bench-smoke`` runs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    """The script, imported as a module."""
    spec = importlib.util.spec_from_file_location(
        "check_documented_commands", ROOT / "scripts" / "check_documented_commands.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


DOC = """# A document

Run `uv run python bench/ingest.py --quick`, or `.venv/bin/python bench/ingest.py --quick`; `make` alone is prose.

```sh
SIDECAR_A=1 \\
  .venv/bin/segment-sidecar serve   # a server: resolved, not run
SIDECAR_ONLY=1                      # a setting, not a command
PYTHONPATH=x .venv/bin/python - <<'EOF'
print("hi")
EOF
```

```console
$ .venv/bin/segment-sidecar config-table
| Variable | Default | Meaning |
```

```python
uv = "not a command"
```
"""


def test_extracts_spans_blocks_continuations_and_heredocs(checker: ModuleType, tmp_path: Path) -> None:
    """Inline commands, a continued line, a here-document (one command) and a console prompt are found; lone words,
    settings blocks, output lines and other languages' blocks are not."""
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    found = [command.text for command in checker.extract(doc)]
    assert found == [
        "uv run python bench/ingest.py --quick",
        ".venv/bin/python bench/ingest.py --quick",
        "SIDECAR_A=1 .venv/bin/segment-sidecar serve",
        "PYTHONPATH=x .venv/bin/python - <<'EOF'\nprint(\"hi\")\nEOF",
        ".venv/bin/segment-sidecar config-table",
    ]


def test_rejects_what_fails_on_a_fresh_clone_and_runs_only_quick_forms(checker: ModuleType, tmp_path: Path) -> None:
    """`uv ...` and the system python on a repository script are rejected, as are missing scripts, make targets and
    subcommands; --quick and config-table forms run, servers and templates do not."""
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    commands = checker.extract(doc)
    problems = [checker.problem(command) for command in commands]
    assert problems[0] is not None and "uv" in problems[0]
    assert problems[1:] == [None, None, None, None]
    quick = [checker.is_quick(command) for command in commands]
    assert quick == [True, True, False, False, True]
    make = checker.Command("make no-such-target", "doc.md", 1)
    system_python = checker.Command("python bench/ingest.py --quick", "doc.md", 1)
    missing = checker.Command(".venv/bin/python bench/no_such_bench.py --quick", "doc.md", 1)
    subcommand = checker.Command(".venv/bin/segment-sidecar no-such-command", "doc.md", 1)
    template = checker.Command(".venv/bin/py-spy record -p <pid> --quick", "doc.md", 1)
    for bad in (make, system_python, missing, subcommand):
        assert checker.problem(bad) is not None, bad
    assert not checker.is_quick(template)


def test_the_repository_documents_pass_the_static_checks(checker: ModuleType) -> None:
    """No command in README.md, bench/README.md or docs/ is rejected without running (`uv run ...` and the like)."""
    commands = [command for path in checker.documents() for command in checker.extract(path)]
    assert len(commands) > 20
    rejected = [f"{command}: {checker.problem(command)}" for command in commands if checker.problem(command)]
    assert rejected == []
    assert any(checker.is_quick(command) and "--quick" in command.text for command in commands)


def test_benchmark_smoke_runs_are_left_to_bench_smoke(checker: ModuleType) -> None:
    """A bench's --quick form is resolved, not run, by the default check (it would cost make test minutes); --bench
    selects exactly those smoke runs, and every bench script in bench/README.md's table is among them."""
    smoke = checker.Command(".venv/bin/python bench/ingest.py --quick", "doc.md", 1)
    help_form = checker.Command(".venv/bin/segment-sidecar serve --help", "doc.md", 1)
    assert checker.is_bench(smoke)
    assert not checker.is_bench(help_form)
    commands = [command for path in checker.documents() for command in checker.extract(path)]
    benches = {word for c in commands if checker.is_bench(c) and checker.is_quick(c) for word in c.text.split()}
    scripts = {f"bench/{path.name}" for path in (ROOT / "bench").glob("*.py")}
    documented = {path for path in scripts if path in (ROOT / "bench" / "README.md").read_text()}
    assert documented - {"bench/common.py", "bench/serve.py", "bench/echo_server.py"} <= benches


def test_a_run_gets_a_private_temporary_folder_removed_afterwards(checker: ModuleType, tmp_path: Path) -> None:
    """A documented command writing to its TMPDIR leaves nothing behind (bench_spool.py's scratch spools did)."""
    record = tmp_path / "tmpdir.txt"
    command = checker.Command(f'touch "$TMPDIR/left-behind" && echo "$TMPDIR" > {record}', "doc.md", 1)
    assert checker.run(command) is None
    scratch = Path(record.read_text().strip())
    assert scratch != Path("/tmp")
    assert not scratch.exists()
