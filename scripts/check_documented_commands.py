"""Check that the commands README.md, bench/README.md and docs/*.md show work as written after `make demo`/`make test`.

Commands are read from the documents themselves, so a command someone adds is checked without touching this script:
every line of a fenced ``sh``/``bash``/``shell`` block (``console`` blocks: the lines after ``$ ``) and every inline
code span that starts like a command (``.venv/bin/...``, ``make ...``, ``scripts/...``, ``uv ...``, ...).

Each command then gets one of three treatments:

- **rejected** when it cannot work as written on a freshly set-up clone: ``uv ...`` (make installs uv into
  ~/.local/bin, which is not on PATH: write ``.venv/bin/...`` or ``~/.local/bin/uv``), or ``python``/``pytest`` on a
  repository script (the system Python lacks the dependencies: write ``.venv/bin/python``);
- **run**, as written, from the repository root, when it is quick: a ``--quick`` or ``--help`` form, or one listed in
  ``QUICK`` below; it must exit 0 within its time limit (one that needs a program listed in ``NEEDS`` is skipped,
  saying so, on a machine without it, except in CI). A benchmark's ``--quick`` smoke run (a ``bench/`` script) takes
  half a minute or more, so by default it is only resolved; ``--bench`` runs those smoke runs and nothing else
  (``make bench-smoke``, a CI step of its own after ``make test``). Each run gets a fresh ``TMPDIR``, removed after
  it, so nothing a command leaves in its temporary folder outlives the check;
- **resolved** otherwise (servers, long benchmarks, commands with placeholders such as ``<pid>``, ``FILE...``): its
  program must exist (a repository path, a Makefile target, a ``segment-sidecar`` subcommand, or a program on PATH
  or named in ``EXTERNAL``), and a repository script it names must exist.

Usage: ``.venv/bin/python scripts/check_documented_commands.py [--list] [--no-run] [--bench]``. Exit status 1 names
every failing command with its file and line.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "bench/README.md", "docs/*.md")

COMMAND_START = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/|~/\.local/bin/|scripts/|tools/|bench/|\./|"
    r"(?:make|uv|python3?|pytest|pip|segment-sidecar|grpcurl|ghz|docker|kubectl|curl)(?:\s|$))"
)
"""An inline code span is a command when it starts like one (environment assignments first are allowed)."""

QUICK = (".venv/bin/segment-sidecar config-table", "scripts/gen_protos.sh --check", "make -n ")
"""Commands (prefixes) that are run although they have no --quick or --help: they take seconds."""

RUN_TIMEOUT = 240.0
"""Seconds one run may take (the benchmarks' --quick forms take 25-40 s alone, more beside other work)."""

EXTERNAL = {
    "docker": "no Docker engine on CI machines; tests/unit/test_dockerfile.py checks the image instead",
    "kubectl": "a cluster is the reader's own; tests/unit/test_kubernetes.py checks the manifests",
    "grpcurl": "third-party; `make grpcurl` installs it into tools/go-bin (tests/integration/test_reflection.py)",
    "ghz": "a third-party load tool the reader installs",
    "pip": "installs into the reader's own Python environment",
    "curl": "a system tool",
    "cd": "a shell builtin",
}
"""Programs a document may name that a fresh clone does not provide, and why that is fine."""

NEEDS = {"bench/bench_fleet.py": "redis-server"}
"""Scripts that need a program a developer machine may lack: skipped there, saying so; required in CI (CI=true)."""

PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…|\[[^\]]*\]|\|")
"""Syntax that marks a command as a template (not runnable as written)."""


@dataclass(frozen=True)
class Command:
    """One command as a document shows it."""

    text: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def documents() -> list[Path]:
    """The documents whose commands are checked, in a stable order."""
    found: list[Path] = []
    for pattern in DOCUMENTS:
        found.extend(sorted(ROOT.glob(pattern)))
    return found


def extract(path: Path) -> list[Command]:
    """Every command in one Markdown document."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    commands: list[Command] = []
    lines = path.read_text().splitlines()
    fence: str | None = None
    pending = ""
    pending_line = 0
    heredoc_end: str | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if fence is None:
            opening = re.match(r"^```(\w*)", stripped)
            if opening:
                fence = opening.group(1) or "text"
                continue
            for span in re.findall(r"`([^`]+)`", line):
                # A lone word (`make`, `grpcurl`, `bench/`) names a tool in prose; a command has arguments.
                if COMMAND_START.match(span.strip()) and len(span.split()) > 1:
                    commands.append(Command(span.strip(), name, number))
            continue
        if stripped.startswith("```"):
            fence = None
            continue
        if fence not in ("sh", "bash", "shell", "console"):
            continue
        if heredoc_end is not None:  # a here-document's body belongs to the command that opened it
            pending += "\n" + line
            if stripped == heredoc_end:
                commands.append(Command(pending, name, pending_line))
                pending, heredoc_end = "", None
            continue
        if fence == "console":
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        code = re.sub(r"\s+#.*$", "", stripped) if not stripped.startswith("#") else ""
        if not code and not pending:
            continue
        if not pending:
            pending_line = number
        pending = f"{pending} {code}".strip() if pending else code
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        marker = re.search(r"<<-?\s*'?(\w+)'?", pending)
        if marker:
            heredoc_end = marker.group(1)
            continue
        if not _is_assignment_only(pending):
            commands.append(Command(pending, name, pending_line))
        pending = ""
    return commands


def _is_assignment_only(text: str) -> bool:
    """A block of ``NAME=value`` lines shows settings, not a command."""
    return all(re.match(r"^[A-Z_][A-Z0-9_]*=", word) for word in shlex.split(text, comments=True) or ["x"])


def _words(command: Command) -> list[str]:
    """The command's words after any leading ``NAME=value`` assignments."""
    try:
        words = shlex.split(command.text.split("\n", 1)[0], comments=True)
    except ValueError:
        words = command.text.split()
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)
    return words


def problem(command: Command) -> str | None:
    """Why ``command`` cannot work as written on a fresh clone after `make`, checked without running it; or None."""
    words = _words(command)
    if not words:
        return None
    program = words[0]
    if program == "uv":
        return "`uv` is not on PATH after `make` installs it: write `.venv/bin/...` or `~/.local/bin/uv`"
    if program in ("python", "python3", "pytest") and any(
        (ROOT / word).is_file() for word in words[1:] if not word.startswith("-")
    ):
        return "the system Python lacks the dependencies: write `.venv/bin/python` (or `.venv/bin/pytest`)"
    if program == "make":
        targets = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        makefile = (ROOT / "Makefile").read_text()
        missing = [t for t in targets if not re.search(rf"^{re.escape(t)}\s*:", makefile, re.MULTILINE)]
        return f"no Makefile target {missing}" if missing else None
    if program.startswith(("~/", "/")):
        return None  # installed by make (~/.local/bin/uv) or the reader's own
    if "/" in program:
        if program.startswith(".venv/bin/") or (ROOT / program).exists():
            return _names_missing_script(words)
        if program.startswith("tools/go-bin/"):
            return None  # installed by `make grpcurl` (EXTERNAL explains)
        return f"{program} does not exist"
    if program == "segment-sidecar":
        return _subcommand_problem(words)
    if program in EXTERNAL or shutil.which(program):
        return None
    return f"{program} is neither in the repository nor on PATH"


def _names_missing_script(words: list[str]) -> str | None:
    for word in words[1:]:
        if re.match(r"^[\w./-]+\.(py|sh)$", word) and not (ROOT / word).exists():
            return f"{word} does not exist"
    if words[0].endswith("segment-sidecar"):
        return _subcommand_problem(words)
    return None


def _subcommand_problem(words: list[str]) -> str | None:
    sys.path.insert(0, str(ROOT))
    from sidecar.__main__ import COMMANDS  # noqa: PLC0415 - only when a document names the command

    if len(words) > 1 and not words[1].startswith("-") and words[1] not in COMMANDS:
        return f"segment-sidecar has no subcommand {words[1]!r}"
    return None


def is_quick(command: Command) -> bool:
    """Whether ``command`` is run (quick, no placeholders, not a server)."""
    text = command.text
    if PLACEHOLDER.search(text.split("\n", 1)[0]):
        return False
    words = _words(command)
    if not words or words[0] in EXTERNAL or words[0].startswith("tools/go-bin/"):
        return False
    return "--quick" in words or words[-1] in ("--help", "-h") or text.startswith(QUICK)


def is_bench(command: Command) -> bool:
    """Whether ``command`` runs a benchmark script (``bench/...``): its smoke run belongs to ``--bench``."""
    return any(word.startswith("bench/") for word in _words(command)[:2])


def missing_program(command: Command) -> str | None:
    """The program ``command`` needs that this machine lacks (see ``NEEDS``), or None."""
    for script, program in NEEDS.items():
        if script in command.text and shutil.which(program) is None:
            return program
    return None


def run(command: Command) -> str | None:
    """Run ``command`` as written from the repository root; the failure, or None."""
    started = time.monotonic()
    # A private TMPDIR, removed afterwards: a benchmark's scratch spool (hundreds of MB) must not pile up in /tmp.
    with tempfile.TemporaryDirectory(prefix="documented-command-") as scratch:
        try:
            result = subprocess.run(  # noqa: S603 - running the documents' own commands is the point
                ["bash", "-c", command.text],  # noqa: S607 - bash from PATH, as a reader's shell
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
                env={**os.environ, "TMPDIR": scratch},
            )
        except subprocess.TimeoutExpired:
            return f"did not finish within {RUN_TIMEOUT:.0f} s"
    print(f"   ran in {time.monotonic() - started:.1f} s, exit {result.returncode}", flush=True)
    if result.returncode != 0:
        return f"exit {result.returncode}: {(result.stdout + result.stderr)[-1500:]}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Check every documented command; print each failure; exit 1 when any failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--list", action="store_true", help="print each command and its treatment, run nothing")
    parser.add_argument("--no-run", action="store_true", help="check without running the quick commands")
    parser.add_argument(
        "--bench", action="store_true", help="run only the benchmarks' --quick smoke runs (make bench-smoke)"
    )
    args = parser.parse_args(argv)
    commands = [command for path in documents() for command in extract(path)]
    if args.bench:
        commands = [command for command in commands if is_bench(command) and is_quick(command)]
        if not commands:
            print("no benchmark smoke run found in the documents (bench/README.md)", file=sys.stderr)
            return 1
    failures: list[str] = []
    ran = resolved = 0
    for command in commands:
        why = problem(command)
        quick = is_quick(command) and (args.bench or not is_bench(command))
        if args.list:
            print(f"{'REJECT' if why else 'run   ' if quick else 'check '} {command}")
            continue
        lacking = missing_program(command) if why is None and quick and not args.no_run else None
        if lacking is not None and os.environ.get("CI") != "true":
            print(f"SKIP {command}: {lacking} is not installed on this machine (CI requires it)")
            resolved += 1
            continue
        if why is None and quick and not args.no_run:
            print(f"== {command}", flush=True)
            why = run(command)
            ran += 1
        else:
            resolved += 1
        if why is not None:
            failures.append(f"{command}\n   {why}")
    if args.list:
        return 0
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"documented commands: {len(commands)} found, {ran} run, {resolved} resolved, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
