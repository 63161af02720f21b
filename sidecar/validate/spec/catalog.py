"""The Segment Spec catalog, loaded once from the package's own copy of ``semantic_events.json``.

The JSON is built from the Spec pages of ``segmentio/segment-docs`` (its header names the commit). This module turns it
into small frozen values the checker indexes at start-up; nothing here runs per event.

Types in the catalog are strings: ``string``, ``number``, ``integer``, ``boolean``, ``array``, ``object``, ``date``
(an ISO-8601 string), ``any``, or a union written ``"a|b"``. Keys may be nested: ``products[].sku`` is the key ``sku``
inside each element of the array ``products``; ``campaign.source`` is the key ``source`` inside the object
``campaign``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

CATALOG_RESOURCE = "semantic_events.json"
"""The file name of the catalog inside this package."""


@dataclass(frozen=True, slots=True)
class SpecEvent:
    """One semantic event of the Spec: its exact name, category and documented property types."""

    name: str
    category: str
    properties: dict[str, str] = field(default_factory=dict)
    legacy_aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every Spec event plus the reserved traits and properties of the other calls."""

    source_commit: str
    events: tuple[SpecEvent, ...]
    identify_traits: dict[str, str]
    group_traits: dict[str, str]
    page_properties: dict[str, str]
    screen_properties: dict[str, str]
    track_properties: dict[str, str]

    def by_name(self) -> dict[str, SpecEvent]:
        """The events keyed by their exact Spec name."""
        return {event.name: event for event in self.events}

    @property
    def categories(self) -> tuple[str, ...]:
        """The category names, in catalog order."""
        seen: dict[str, None] = {}
        for event in self.events:
            seen.setdefault(event.category, None)
        return tuple(seen)


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build a :class:`Catalog` from the decoded JSON document."""
    events: list[SpecEvent] = []
    for category in data["categories"]:
        for raw in category["events"]:
            events.append(
                SpecEvent(
                    name=raw["name"],
                    category=category["name"],
                    properties=dict(raw.get("properties", {})),
                    legacy_aliases=tuple(raw.get("legacy_aliases", ())),
                )
            )
    return Catalog(
        source_commit=data.get("source_commit", ""),
        events=tuple(events),
        identify_traits=dict(data["reserved_identify_traits"]),
        group_traits=dict(data["reserved_group_traits"]),
        page_properties=dict(data["reserved_page_properties"]),
        screen_properties=dict(data["reserved_screen_properties"]),
        track_properties=dict(data["reserved_track_properties"]),
    )


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package (read and parsed once per process)."""
    text = resources.files(__package__).joinpath(CATALOG_RESOURCE).read_text(encoding="utf-8")
    return parse_catalog(json.loads(text))
