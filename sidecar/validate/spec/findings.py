"""What the Spec checker reports: a :class:`Finding` per problem, each with a stable code and a severity."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """ERROR rejects the call (strict mode, near-miss event names only); WARNING is reported and forwarded."""

    ERROR = "error"
    WARNING = "warning"


class Code(enum.StrEnum):
    """The stable finding codes; metrics and clients may switch on them."""

    EVENT_NAME = "spec.event_name"
    PROPERTY_TYPE = "spec.property_type"
    PROPERTY_NAME = "spec.property_name"
    TRAIT_TYPE = "spec.trait_type"
    TRAIT_NAME = "spec.trait_name"
    INTEGRATION_NAME = "spec.integration_name"
    INTEGRATION_TYPE = "spec.integration_type"


@dataclass(frozen=True, slots=True)
class Finding:
    """One departure from the Spec, written for the engineer who has to fix it.

    ``field`` is a path into the call (``event``, ``properties.revenue``, ``properties.products[2].price``,
    ``traits.email``, ``integrations.all``); ``suggestion`` is what to send instead, when there is one answer.
    """

    code: str
    field: str
    message: str
    severity: Severity
    suggestion: str | None = None
    category: str | None = None
