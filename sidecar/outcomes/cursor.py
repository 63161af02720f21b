"""Cursors of the outcome log: opaque to clients, and carrying the spool's identity so that a cursor of another
spool (another sidecar, or a spool folder replaced) is refused rather than misread.

A cursor is ``base64url("o1.<spool id>.<seq>")`` without padding: ``o1`` names the format, the spool id is the random
id stored in the spool (``spool_meta``), ``seq`` the record's place in the log.
"""

from __future__ import annotations

import base64
import binascii

from sidecar.errors import InvalidEvent

_PREFIX = "o1"


def encode(spool_id: str, seq: int) -> str:
    """The cursor of record ``seq`` of spool ``spool_id``."""
    return base64.urlsafe_b64encode(f"{_PREFIX}.{spool_id}.{seq}".encode()).decode().rstrip("=")


def decode(cursor: str, spool_id: str, field: str = "after_cursor") -> int:
    """The seq a cursor names; :class:`~sidecar.errors.InvalidEvent` (INVALID_ARGUMENT, on ``field``) for a string
    that is not a cursor or is one of another spool."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, owner, seq_text = text.split(".")
        seq = int(seq_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidEvent.single(field, "is not a cursor of this sidecar's outcome log") from None
    if prefix != _PREFIX or seq < 0:
        raise InvalidEvent.single(field, "is not a cursor of this sidecar's outcome log")
    if owner != spool_id:
        raise InvalidEvent.single(
            field, "is a cursor of another spool (another sidecar, or a replaced spool folder): start again without it"
        )
    return seq
