"""What a person cannot see in an identifier: blank ones and control characters, found without echoing the value.

Identifiers (``userId``, ``anonymousId``, ``groupId``, ``previousId``) name a record in the customer's own database,
so one made only of spaces or invisible characters names nothing, and a control character (a newline read from a file,
a NUL) is a bug upstream. Both checks start with ``str.isascii`` and ``str.isprintable``, C loops that are true for
nearly every real id, so the per-event cost is a few calls; a non-ASCII id stops at its first visible character.
"""

from __future__ import annotations

import unicodedata

INVISIBLE_OUTSIDE_CF = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0\u2800")
"""Default-ignorable or blank code points outside category Cf (combining grapheme joiner, Hangul fillers, Khmer
inherent vowels, Braille blank): they render as nothing or as a space."""


def describe(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a character named for a person, since it cannot be shown."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED CHARACTER')}"


def _invisible(ch: str) -> bool:
    return ch.isspace() or ch in INVISIBLE_OUTSIDE_CF or unicodedata.category(ch) == "Cf"


def blank(value: str) -> bool:
    """True when ``value`` is empty once spaces and invisible characters (format characters such as the zero-width
    space, soft hyphen or byte-order mark) are trimmed."""
    if value.isascii() and value.isprintable() and not value.isspace():
        return not value  # printable ASCII is blank only when it is all spaces, and isspace said it is not
    return all(_invisible(ch) for ch in value)


def first_control(value: str) -> tuple[int, str] | None:
    """The position and the character of the first control character (category Cc: C0, DEL, C1) in ``value``."""
    if value.isprintable():
        return None
    for position, ch in enumerate(value):
        if unicodedata.category(ch) == "Cc":
            return position, ch
    return None
