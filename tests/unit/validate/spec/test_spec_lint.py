"""The lint command on real files: each input format, the output formats and the exit statuses."""

from __future__ import annotations

import io
import json
from pathlib import Path

from sidecar.lint import EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, main

PLAN_YAML = """\
- name: Order Completed
  properties:
    orderId: string
    revenue: {type: string}
- name: Add to Cart
  properties:
    product_id: string
- name: Ticket Created
"""


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_names_file_reports_file_line_and_suggestion(tmp_path: Path) -> None:
    """A names file: each near-miss is printed as file:line with its suggestion, and the exit status is 1."""
    path = tmp_path / "events.txt"
    path.write_text("Order Completed\n# a comment\n\nPurchase\nSMS Delivered\n")
    status, out, _ = _run(str(path))
    assert status == EXIT_REJECTED
    assert f"{path}:4: error spec.event_name event:" in out
    assert "[suggestion: Order Completed]" in out
    assert "3 events checked: 1 would be rejected" in out


def test_clean_names_exit_zero(tmp_path: Path) -> None:
    """Exact and custom names only: nothing printed but the summary, exit 0."""
    path = tmp_path / "ok.txt"
    path.write_text("Order Completed\nTicket Created\n")
    status, out, _ = _run(str(path))
    assert status == EXIT_OK
    assert out.startswith("2 events checked: 0 would be rejected")


def test_yaml_tracking_plan(tmp_path: Path) -> None:
    """A YAML plan: names, property names and declared types are checked; lines point at each entry."""
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML)
    status, out, _ = _run(str(path))
    assert status == EXIT_REJECTED
    assert f"{path}:1: warning spec.property_name properties.orderId" in out
    assert f"{path}:1: warning spec.property_type properties.revenue" in out
    assert "the plan declares another type" in out
    assert f"{path}:5: error spec.event_name" in out


def test_json_tracking_plan_and_json_output(tmp_path: Path) -> None:
    """A JSON plan with --format json: a machine-readable document with every finding and a summary."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"events": [{"name": "Viewed Product"}, {"name": "Product Viewed"}]}))
    status, out, _ = _run("--format", "json", str(path))
    document = json.loads(out)
    assert status == EXIT_REJECTED
    (finding,) = document["findings"]
    assert finding["suggestion"] == "Product Viewed"
    assert finding["severity"] == "error"
    assert finding["line"] == 1
    assert document["summary"] == {"events": 2, "rejected": 1, "warnings": 0}


def test_json_lines_of_events(tmp_path: Path) -> None:
    """JSON lines: track, identify and integrations are each checked at their own line."""
    path = tmp_path / "events.jsonl"
    lines = [
        {"type": "track", "event": "Email Opened", "properties": {"email_id": "e1"}},
        {"type": "identify", "traits": {"email": 42}},
        {"type": "track", "event": "App Launched", "integrations": {"all": False}},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    status, out, _ = _run(str(path))
    assert status == EXIT_REJECTED
    assert f"{path}:2: warning spec.trait_type traits.email" in out
    assert f"{path}:3: error spec.event_name" in out
    assert f"{path}:3: warning spec.integration_name integrations.all" in out


def test_warn_mode_and_allow_list_exit_zero(tmp_path: Path) -> None:
    """--mode warn reports but never fails; --allow silences the listed names."""
    path = tmp_path / "events.txt"
    path.write_text("Purchase\nLogin\n")
    status, out, _ = _run("--mode", "warn", str(path))
    assert status == EXIT_OK
    assert "warning spec.event_name" in out
    status, out, _ = _run("--allow", "Purchase,Login", str(path))
    assert status == EXIT_OK
    assert "spec.event_name" not in out


def test_unreadable_or_malformed_input_exits_two(tmp_path: Path) -> None:
    """A missing file or broken JSON lines is exit 2 with the reason on stderr; other files are still linted."""
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "track", "event": "A"}\n{not json\n')
    good = tmp_path / "good.txt"
    good.write_text("Purchase\n")
    status, out, err = _run(str(tmp_path / "missing.txt"), str(broken), str(good))
    assert status == EXIT_UNREADABLE
    assert "missing.txt: cannot lint" in err
    assert "broken.jsonl: cannot lint: line 2" in err
    assert "[suggestion: Order Completed]" in out
