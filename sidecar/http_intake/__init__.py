"""Segment's HTTP Tracking API, served locally (``SIDECAR_HTTP_LISTEN``): a second intake in front of the same
pipeline as the gRPC API, so that Segment's own libraries get the sidecar by changing their host.

The pure parts, :mod:`.parse` (requests into calls) and :mod:`.answers` (outcomes into statuses), are tested without
a socket; :mod:`.recent` remembers the message ids accepted moments ago; :mod:`.server` is the aiohttp shell.
"""

from __future__ import annotations

from sidecar.http_intake.server import TOKEN_HEADER, HttpIntake

__all__ = ["TOKEN_HEADER", "HttpIntake"]
