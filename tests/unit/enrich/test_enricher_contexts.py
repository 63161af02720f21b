"""The enricher remembers a caller context's enrichment by its JSON bytes: the events are byte for byte those of an
enricher that never saw the context before, the replacement warning comes with every call, and the memo is bounded."""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.enrich.enricher import MAX_REMEMBERED_CONTEXTS, Enricher
from sidecar.model import Call, CallType, Region, Warning

INTEGRATION = {"name": "acme-mail", "version": "1.0.0"}


def call(context: dict[str, Any] | None, as_bytes: bool = True) -> Call:
    """A track call whose context came as JSON bytes (or as a Struct, ``as_bytes=False``), as to_call builds it."""
    fields: dict[str, Any] = {"event": "Report Generated", "userId": "u", "messageId": "m-1"}
    parsed: dict[str, dict[str, Any]] = {}
    raw = b""
    if context is not None:
        raw = orjson.dumps(context)
        fields["context"] = orjson.Fragment(raw) if as_bytes else context
        parsed["context"] = context
    return Call(CallType.TRACK, "wk", Region.US, fields, parsed, 1.7e9, raw if as_bytes else b"")


CONTEXTS: list[dict[str, Any] | None] = [
    None,
    {"ip": "10.0.0.1", "app": {"name": "shop"}},
    {"integration": {"name": "other", "version": "9"}, "ip": "10.0.0.2"},
    {"integration": INTEGRATION, "library": {"name": "segment-sidecar", "version": "0.1"}, "ip": "10.0.0.3"},
]


def test_remembered_enrichment_gives_the_same_events_and_warnings() -> None:
    """For each kind of context (none, the caller's own, a replaced integration, one an edge enriched already), the
    third event from one enricher equals the first from a fresh one, warnings included."""
    warm = Enricher(INTEGRATION["name"], INTEGRATION["version"])
    for context in CONTEXTS:
        for as_bytes in (True, False):
            for _ in range(3):
                warm_warnings: list[Warning] = []
                warm_event = warm(call(context, as_bytes), warm_warnings)
            cold_warnings: list[Warning] = []
            cold_event = Enricher(INTEGRATION["name"], INTEGRATION["version"])(call(context, as_bytes), cold_warnings)
            assert warm_event.payload == cold_event.payload, context
            assert warm_warnings == cold_warnings


def test_the_replacement_warning_comes_with_every_call() -> None:
    """A context whose integration the sidecar replaces warns on each call with it, not only the first."""
    enrich = Enricher(INTEGRATION["name"], INTEGRATION["version"])
    for _ in range(3):
        warnings: list[Warning] = []
        event = enrich(call({"integration": {"name": "x"}}), warnings)
        assert [w.code for w in warnings] == ["context.integration_replaced"]
        assert orjson.loads(event.payload)["context"]["integration"] == INTEGRATION


def test_the_context_memo_is_bounded() -> None:
    """More distinct contexts than the memo holds keep it at its bound."""
    enrich = Enricher(INTEGRATION["name"], INTEGRATION["version"])
    for index in range(MAX_REMEMBERED_CONTEXTS + 10):
        enrich(call({"n": index}), [])
        assert len(enrich._contexts) <= MAX_REMEMBERED_CONTEXTS
