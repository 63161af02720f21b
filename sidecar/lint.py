"""``segment-sidecar lint``: run the Spec checker over files in a partner's CI, before any event is sent.

Each FILE is one of (detected from its content):

- event names, one per line (blank lines and ``#`` comments ignored);
- JSON lines, one Segment call per line: ``{"type": "track", "event": "...", "properties": {...}}``, identify/group
  with ``traits``, page/screen with ``name`` and ``properties``, any with ``integrations``;
- a tracking plan, JSON or YAML: a list of ``{"name": ..., "type": "track", "properties": {...}}`` (or an object with
  such a list under ``events``). A plan's property values are type declarations (``"number"`` or ``{"type":
  "number"}``); they are checked as if a value of that type were sent.

Prints one line per finding with its suggestion (``file:line: severity code field: message``), or a JSON document with
``--format json``. Exit status: 0 when no event would be rejected in strict mode, 1 when one would, 2 when a file
cannot be read or parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from sidecar.model import CallType
from sidecar.validate.spec import MODES, Finding, Severity, SpecChecker

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_UNREADABLE = 2

_SAMPLE_VALUES: dict[str, Any] = {
    "string": "x",
    "number": 1.5,
    "integer": 1,
    "boolean": True,
    "array": [],
    "object": {},
    "date": "2024-01-01T00:00:00Z",
    "date-time": "2024-01-01T00:00:00Z",
}
"""A value of each declared plan type, handed to the checker in place of a real value."""


class InputError(Exception):
    """A file that cannot be read or parsed."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call to check, with where it came from."""

    line: int
    type: CallType
    name: str | None
    payload: Mapping[str, Any] | None
    integrations: Mapping[str, Any] | None
    planned: bool = False
    """True for a tracking-plan entry, whose payload holds sample values of the declared types."""


def _sample(declared: Any) -> Any:
    if isinstance(declared, Mapping):
        if declared.get("format") in ("date", "date-time"):
            return _SAMPLE_VALUES["date"]
        declared = declared.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return _SAMPLE_VALUES.get(declared) if isinstance(declared, str) else None


def _call_type(raw: Any, default: CallType) -> CallType:
    try:
        return CallType(str(raw).lower()) if raw is not None else default
    except ValueError as exc:
        raise InputError(f"unknown call type {raw!r}") from exc


def _event_call(line: int, event: Mapping[str, Any]) -> Call:
    call_type = _call_type(event.get("type"), CallType.TRACK)
    if call_type in (CallType.IDENTIFY, CallType.GROUP):
        name, payload = None, event.get("traits")
    elif call_type is CallType.TRACK:
        name, payload = event.get("event"), event.get("properties")
    else:
        name, payload = event.get("name"), event.get("properties")
    integrations = event.get("integrations")
    return Call(
        line=line,
        type=call_type,
        name=name if isinstance(name, str) else None,
        payload=payload if isinstance(payload, Mapping) else None,
        integrations=integrations if isinstance(integrations, Mapping) else None,
    )


def _plan_calls(text: str, entries: list[Any]) -> Iterator[Call]:
    position = 0
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise InputError("a tracking plan must be a list of objects with a name")
        name = entry.get("name", entry.get("event"))
        line = 1
        if isinstance(name, str) and name:
            found = text.find(name, position)
            if found >= 0:
                line = text.count("\n", 0, found) + 1
                position = found + len(name)
        call_type = _call_type(entry.get("type"), CallType.TRACK)
        declared = entry.get("properties", entry.get("traits"))
        payload = {key: _sample(value) for key, value in declared.items()} if isinstance(declared, Mapping) else None
        yield Call(
            line=line,
            type=call_type,
            name=name if isinstance(name, str) and call_type is not CallType.IDENTIFY else None,
            payload=payload,
            integrations=None,
            planned=True,
        )


def parse(text: str, suffix: str = "") -> list[Call]:
    """Detect the file's format and return the calls it describes."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
            if not stripped.startswith("{"):
                raise InputError("not valid JSON") from None
        if document is None:  # JSON lines
            calls = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line {number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(event, Mapping):
                    raise InputError(f"line {number}: expected a JSON object")
                calls.append(_event_call(number, event))
            return calls
        return _document_calls(text, document)
    if suffix in (".yaml", ".yml"):
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"not valid YAML ({exc})") from exc
        return _document_calls(text, document)
    return [
        Call(line=number, type=CallType.TRACK, name=line.strip(), payload=None, integrations=None)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _document_calls(text: str, document: Any) -> list[Call]:
    if isinstance(document, Mapping):
        if "events" in document and isinstance(document["events"], list):
            document = document["events"]
        elif "type" in document or "event" in document:
            return [_event_call(1, document)]
    if not isinstance(document, list):
        raise InputError("expected a list of events or a tracking plan")
    if all(isinstance(entry, Mapping) and ("event" in entry and "name" not in entry) for entry in document):
        return [_event_call(1, entry) for entry in document]
    return list(_plan_calls(text, document))


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="segment-sidecar lint",
        description="Check event names, events or a tracking plan against the Segment Spec.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="event names, JSON lines or a tracking plan")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument("--mode", choices=MODES, default="strict", help="spec mode to apply (default strict)")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NAMES",
        help="custom event names to keep, comma-separated; may be repeated",
    )
    return parser.parse_args(argv)


def _print_text(out: TextIO, path: str, line: int, finding: Finding) -> None:
    hint = f" [suggestion: {finding.suggestion}]" if finding.suggestion else ""
    out.write(f"{path}:{line}: {finding.severity} {finding.code} {finding.field}: {finding.message}{hint}\n")


def main(argv: list[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the lint command; returns the process exit status (see the module docstring)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _arguments(argv)
    allow = [name.strip() for value in args.allow for name in value.split(",") if name.strip()]
    checker = SpecChecker(mode=args.mode, allow=allow)
    status = EXIT_OK
    records: list[dict[str, Any]] = []
    checked = rejected = warnings = 0
    for path in args.files:
        try:
            text = Path(path).read_text(encoding="utf-8")
            calls = parse(text, Path(path).suffix.lower())
        except (OSError, UnicodeDecodeError, InputError) as exc:
            err.write(f"{path}: cannot lint: {exc}\n")
            status = EXIT_UNREADABLE
            continue
        for call in calls:
            checked += 1
            findings = checker.check(call.type, call.name, call.payload, call.integrations)
            if any(f.severity is Severity.ERROR for f in findings):
                rejected += 1
            for raw in findings:
                finding = _as_declared(raw) if call.planned else raw
                warnings += finding.severity is Severity.WARNING
                if args.format == "text":
                    _print_text(out, path, call.line, finding)
                else:
                    records.append({"file": path, "line": call.line, "name": call.name, **_as_dict(finding)})
    if args.format == "json":
        summary = {"events": checked, "rejected": rejected, "warnings": warnings}
        out.write(json.dumps({"findings": records, "summary": summary}, indent=2) + "\n")
    else:
        out.write(
            f"{_count(checked, 'event')} checked: {rejected} would be rejected in {args.mode} mode, "
            f"{_count(warnings, 'warning')}\n"
        )
    if status == EXIT_OK and rejected:
        status = EXIT_REJECTED
    return status


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _as_declared(finding: Finding) -> Finding:
    """Reword a type finding on a plan entry: the plan declared a type, it did not send a value."""
    head, sep, _ = finding.message.rpartition(", got ")
    if not sep:
        return finding
    return replace(finding, message=f"{head}, but the plan declares another type")


def _as_dict(finding: Finding) -> dict[str, Any]:
    return {
        "code": str(finding.code),
        "field": finding.field,
        "severity": str(finding.severity),
        "message": finding.message,
        "suggestion": finding.suggestion,
        "category": finding.category,
    }
