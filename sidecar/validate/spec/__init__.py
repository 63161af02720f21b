"""Spec conformance: catch events that mean a Segment Spec event but don't follow it, before Segment does.

Build one :class:`SpecChecker` at start-up and call :meth:`SpecChecker.check` per event; it returns a list of
:class:`Finding` (empty when the call conforms). Only a near-miss event name in strict mode is an ERROR; every other
finding is a WARNING. See ``docs/spec-check.md``.
"""

from __future__ import annotations

from sidecar.validate.spec.catalog import Catalog, SpecEvent, load_catalog
from sidecar.validate.spec.checker import MODES, Mode, SpecChecker
from sidecar.validate.spec.findings import Code, Finding, Severity
from sidecar.validate.spec.names import Verdict

__all__ = [
    "MODES",
    "Catalog",
    "Code",
    "Finding",
    "Mode",
    "Severity",
    "SpecChecker",
    "SpecEvent",
    "Verdict",
    "load_catalog",
]
