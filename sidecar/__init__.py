"""segment-sidecar: a local gRPC sidecar that streams a partner's events into Segment.

The package is laid out by pipeline stage, in the order an event travels:
``api -> validate -> enrich -> spool -> batch -> deliver``. ``app`` wires the stages together.
"""

from __future__ import annotations

__version__ = "0.1.0"
