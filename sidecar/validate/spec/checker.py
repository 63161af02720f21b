"""The Spec conformance checker: one pure function of a call's name, payload and integrations.

Built once at start-up (indexes, compiled schemas), then called per event on the hot path. The cost that matters is
the event name: a name is classified once and its verdict memoised in a bounded LRU (partners send few distinct
names), so the steady-state cost of the name check is one cache lookup. Property and trait checks walk the payload's
keys once (see :mod:`.properties`).

Modes (``SIDECAR_SPEC_MODE``):

- ``strict``: a near-miss event name is an ERROR (the caller rejects the call); everything else is a WARNING.
- ``warn``: every finding is a WARNING.
- ``off``: :meth:`SpecChecker.check` returns ``[]`` straight away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal

from sidecar.model import CallType
from sidecar.validate.spec._lookalikes import disguises
from sidecar.validate.spec.catalog import Catalog, SpecEvent, load_catalog
from sidecar.validate.spec.findings import Code, Finding, Severity
from sidecar.validate.spec.names import NameIndex, Verdict
from sidecar.validate.spec.properties import Schema, describe, is_object

Mode = Literal["strict", "warn", "off"]
MODES: tuple[Mode, ...] = ("strict", "warn", "off")
DEFAULT_NAME_CACHE_SIZE = 4096
"""Distinct event names remembered; a partner sends tens to hundreds, so this holds them all with room to spare."""
MAX_CACHED_NAME_CHARS = 256
"""Longer names are classified on each call and never remembered, so the cache holds at most ~1 MiB of names."""

KNOWN_INTEGRATIONS: tuple[str, ...] = (
    "All",
    "Amplitude",
    "Braze",
    "Customer.io",
    "Facebook Pixel",
    "FullStory",
    "Google Analytics",
    "Google Analytics 4",
    "Google Tag Manager",
    "Heap",
    "HubSpot",
    "Intercom",
    "Iterable",
    "Kissmetrics",
    "Mixpanel",
    "Optimizely",
    "Salesforce",
    "Segment.io",
)
"""``integrations`` keys whose exact spelling we know. Segment matches these keys case-sensitively, so ``all`` or
``google analytics`` silently does nothing; only these names are checked, every other key passes."""

# Enum member access goes through the enum machinery (hundreds of ns on Python 3.11); the hot path compares against
# plain module constants instead.
_TRACK = CallType.TRACK
_IDENTIFY = CallType.IDENTIFY
_GROUP = CallType.GROUP
_PAGE = CallType.PAGE
_SCREEN = CallType.SCREEN

_GROUP_TYPE_OVERRIDES = {"employees": "string|number"}
"""The Spec types ``employees`` as a string but its own example sends a number; accept both."""


class SpecChecker:
    """Checks one call against the Segment Spec and returns its findings (see the module docstring)."""

    __slots__ = (
        "_allow",
        "_event_schemas",
        "_group",
        "_identify",
        "_index",
        "_integrations",
        "_mode",
        "_name_cache",
        "_off",
        "_page",
        "_screen",
        "_track",
    )

    def __init__(
        self,
        mode: Mode = "strict",
        allow: Iterable[str] = (),
        *,
        catalog: Catalog | None = None,
        name_cache_size: int = DEFAULT_NAME_CACHE_SIZE,
    ) -> None:
        """Build every index once; ``allow`` lists custom event names the partner keeps, which are never flagged."""
        if mode not in MODES:
            raise ValueError(f"spec mode must be one of {', '.join(MODES)}, not {mode!r}")
        self._mode = mode
        self._off = mode == "off"
        self._allow = frozenset(allow)
        catalog = catalog or load_catalog()
        self._index = NameIndex(catalog)
        self._track = Schema(catalog.track_properties, owner=None)
        self._event_schemas: dict[str, Schema] = {
            event.name: Schema(event.properties, owner=event.name).merged(self._track) for event in catalog.events
        }
        self._identify = Schema(catalog.identify_traits, owner=None, traits=True, accept_snake_case=True)
        self._group = Schema(
            {**catalog.group_traits, **_GROUP_TYPE_OVERRIDES}, owner=None, traits=True, accept_snake_case=True
        )
        self._page = Schema(catalog.page_properties, owner="page")
        self._screen = Schema(catalog.screen_properties, owner="screen")
        self._integrations = {name.lower(): name for name in KNOWN_INTEGRATIONS} | {n: n for n in KNOWN_INTEGRATIONS}
        self._name_cache = lru_cache(maxsize=name_cache_size)(self._classify)

    @property
    def mode(self) -> Mode:
        """The mode this checker was built with."""
        return self._mode

    def check(
        self,
        call_type: CallType,
        name: str | None,
        payload: Mapping[str, Any] | None,
        integrations: Mapping[str, Any] | None = None,
    ) -> list[Finding]:
        """The findings for one call: ``name`` is the track event (or page/screen name), ``payload`` its properties
        (or identify/group traits). Pure: the same arguments always give the same findings."""
        if self._off:
            return []
        findings: list[Finding] = []
        if call_type is _TRACK:
            schema = self._track
            if name is not None:
                name_finding, event_schema = (
                    self._name_cache(name) if len(name) <= MAX_CACHED_NAME_CHARS else self._classify(name)
                )
                if name_finding is not None:
                    findings.append(name_finding)
                if event_schema is not None:
                    schema = event_schema
            if payload:
                schema.check(payload, "properties", findings)
        elif call_type is _IDENTIFY:
            if payload:
                self._identify.check(payload, "traits", findings)
        elif call_type is _GROUP:
            if payload:
                self._group.check(payload, "traits", findings)
        elif call_type is _PAGE:
            if payload:
                self._page.check(payload, "properties", findings)
        elif call_type is _SCREEN and payload:
            self._screen.check(payload, "properties", findings)
        if integrations:
            self._check_integrations(integrations, findings)
        return findings

    def classify(self, name: str) -> tuple[Verdict, SpecEvent | None]:
        """The name's verdict and Spec event, ignoring the allow list (for tools and tests)."""
        match = self._index.match(name)
        return match.verdict, match.event

    def _classify(self, name: str) -> tuple[Finding | None, Schema | None]:
        if name in self._allow:
            return None, None
        match = self._index.match(name)
        if match.event is None:
            return None, None
        schema = self._event_schemas[match.event.name]
        if match.verdict is not Verdict.NEAR_MISS:
            return None, schema
        spec_name, category = match.event.name, match.event.category
        hidden = disguises(name)
        # A look-alike is shown by its code points: on a screen it reads exactly like the Spec name.
        why = f" but holds look-alike or invisible characters ({', '.join(hidden)})" if hidden else ""
        finding = Finding(
            code=Code.EVENT_NAME,
            field="event",
            message=f'"{name}" looks like the Spec event "{spec_name}" ({category}){why}; send "{spec_name}" instead '
            f'so destinations recognise it, or add "{name}" to SIDECAR_SPEC_ALLOW to keep it as a custom event',
            severity=Severity.ERROR if self._mode == "strict" else Severity.WARNING,
            suggestion=spec_name,
            category=category,
        )
        return finding, schema

    def _check_integrations(self, integrations: Mapping[str, Any], findings: list[Finding]) -> None:
        for key, value in integrations.items():
            if not isinstance(key, str):
                continue
            known = self._integrations.get(key) or self._integrations.get(key.strip().lower())
            if known is not None and known != key:
                findings.append(
                    Finding(
                        code=Code.INTEGRATION_NAME,
                        field=f"integrations.{key}",
                        message=f'integrations key "{key}" should be spelled "{known}": Segment matches these keys '
                        "case-sensitively, so this one is ignored",
                        severity=Severity.WARNING,
                        suggestion=known,
                    )
                )
            if (known or key) == "All":
                ok = isinstance(value, bool)
                expected = "a boolean"
            else:
                ok = isinstance(value, bool) or is_object(value)
                expected = "a boolean or an object of destination options"
            if not ok:
                findings.append(
                    Finding(
                        code=Code.INTEGRATION_TYPE,
                        field=f"integrations.{key}",
                        message=f'integrations key "{key}" should be {expected}, got {describe(value)}',
                        severity=Severity.WARNING,
                    )
                )
