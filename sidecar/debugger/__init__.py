"""The live debugger page (``SIDECAR_DEBUGGER_LISTEN``): events as they pass the sidecar, streamed to a browser."""

from sidecar.debugger.server import Debugger

__all__ = ["Debugger"]
