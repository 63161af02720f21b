"""The conformance harness's normalisation and comparison (pure functions; the live run is test_conformance.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

HARNESS = Path(__file__).resolve().parents[2] / "conformance" / "harness.py"


def load_harness() -> ModuleType:
    """Import clients/conformance/harness.py by path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("conformance_harness", HARNESS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_normalise_drops_run_specific_fields_sorts_and_dedupes() -> None:
    """Timestamps and the library version go, duplicates count once, events sort by messageId."""
    harness = load_harness()
    event = {
        "type": "track",
        "messageId": "b",
        "timestamp": "2026-01-01T00:00:00Z",
        "sentAt": "x",
        "receivedAt": "y",
        "context": {"library": {"name": "segment-sidecar", "version": "9.9.9"}, "integration": {"name": "t"}},
    }
    other = {"type": "identify", "messageId": "a", "context": {}}
    normalised = harness.normalise([event, other, dict(event, timestamp="2027-01-01T00:00:00Z")])
    assert normalised == [
        other,
        {
            "type": "track",
            "messageId": "b",
            "context": {"library": {"name": "segment-sidecar"}, "integration": {"name": "t"}},
        },
    ]


def test_compare_shows_a_readable_diff() -> None:
    """Equal inputs give no diff; a changed property shows as a unified diff line."""
    harness = load_harness()
    expected = {"us": [{"messageId": "a", "properties": {"count": 3}}], "eu": []}
    assert harness.compare(expected, json.loads(json.dumps(expected))) == ""
    diff = harness.compare(expected, {"us": [{"messageId": "a", "properties": {"count": 3.0}}], "eu": []})
    assert '-        "count": 3' in diff
    assert '+        "count": 3.0' in diff


def test_scenario_expected_matches_its_steps() -> None:
    """Every accepted step's message id is expected exactly once, in its region; rejected ones never."""
    scenario = json.loads((HARNESS.parent / "scenario.json").read_text())
    accepted, rejected = {}, set()
    for step in scenario["steps"]:
        if step["call"] == "batch":
            items = list(zip(step["events"], step["expect"]["results"], strict=True))
        else:
            items = [(step, step["expect"])]
        for item, expect in items:
            region = {"US": "us", "EU": "eu"}.get(item["request"].get("region", ""), "us")
            if expect["ok"]:
                accepted[item["request"]["message_id"]] = region
            else:
                rejected.add(item["request"]["message_id"])
    expected = {event["messageId"]: region for region, events in scenario["expected"].items() for event in events}
    assert expected == accepted
    assert not rejected & set(expected)
