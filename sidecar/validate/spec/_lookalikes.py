r"""Unicode look-alikes: fold a name to the plain letters a person reads, before it is matched against the Spec.

``Order C\u043empleted`` (a Cyrillic ``o``), ``\uff2frder \uff23ompleted`` (full-width letters),
``Order Complete\u0301d`` (a combining accent) and ``Com\u00adpleted`` (a soft hyphen) all read as ``Order
Completed`` on a screen, and none of them is that name to Segment or its destinations. :func:`fold` undoes each
disguise:

1. NFKD: compatibility forms become their plain letters (full-width, mathematical and circled letters, ligatures such
   as ``\ufb01``), and accented letters split into a base letter and combining marks;
2. combining marks (categories Mn, Me) and invisible characters (category Cf: soft hyphen, zero-width space and
   joiners, word joiner, byte-order mark, bidirectional marks; plus the few default-ignorable letters such as the
   Hangul fillers) are dropped, so a word they sat inside is whole again;
3. the Cyrillic, Greek and Armenian letters that look like Latin ones (Unicode's ``confusables.txt``, restricted to
   those scripts and to one letter for one letter) become those Latin letters.

The result is only ever used as a matching key: a name that folds to something else than itself is never EXACT,
since what it puts on the wire differs from the Spec name. Names in plain ASCII (nearly all) return unchanged after
one ``str.isascii`` call.
"""

from __future__ import annotations

import unicodedata

from sidecar.validate.text import INVISIBLE_OUTSIDE_CF, describe

# Look-alike letters and the Latin letter each reads as, position by position. Written as escapes, since the
# letters themselves are exactly what a reader cannot tell apart (Cyrillic, Greek, Armenian, then Latin letters
# outside ASCII such as the dotless i and small capitals).
_LOOK_ALIKES = (
    "\u0430\u0432\u0435\u0451\u04bb\u0456\u0457\u0458\u043a\u043c\u043d\u043e\u0440\u0441"
    "\u0442\u0443\u0445\u0455\u0501\u051b\u051d\u04af\u04cf\u0261\u0410\u0412\u0415\u0401"
    "\u04ba\u0406\u0407\u0408\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425\u0405"
    "\u0500\u051a\u051c\u04ae\u04c0\u03b1\u03b2\u03b3\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1"
    "\u03c4\u03c5\u03c7\u03f2\u03f3\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
    "\u039f\u03a1\u03a4\u03a5\u03a7\u03f9\u037f\u0585\u057d\u0570\u0578\u0581\u0566\u0555"
    "\u054d\u0131\u0237\u0251\u0269\u028f\u1d0f\u1d04\u1d20\u1d21\u1d22\u00f8\u00d8\u0111"
    "\u0110\u0142\u0141"
    # Latin small capitals
    "\u1d00\u0299\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d\u0274\u1d18\u0280\ua731\u1d1b\u1d1c"
)
_READ_AS = (
    "abeehiijkmhopctyxsdqwylgABEEHIIJKMHOPCTYXSDQWYIabyeikvoptuxcjABEZHIKMNOPTYXCJouhngqOUijaiyocvwzoOdDlL"
    "abdefghijklmnprstu"
)
_SPELLED_OUT = {"\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE"}
"""Letters read as two (sharp s, ae); NFKD already covers full-width, mathematical and circled forms."""

_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
"""Combining marks and format (invisible) characters."""

_IGNORABLE = INVISIBLE_OUTSIDE_CF

_TABLE = str.maketrans({**dict(zip(_LOOK_ALIKES, _READ_AS, strict=True)), **_SPELLED_OUT})


def fold(name: str) -> str:
    """``name`` with compatibility forms, combining marks, invisible characters and look-alike letters undone."""
    if name.isascii():
        return name
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(
        ch
        for ch in decomposed
        if ch.isascii() or (ch not in _IGNORABLE and unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    )
    return kept.translate(_TABLE)


def disguises(name: str) -> list[str]:
    """The characters of ``name`` that :func:`fold` changes, named for a person (``U+043E CYRILLIC SMALL LETTER O``).

    Called only for a name that folded to something else, to say in the refusal what to look for.
    """
    found: list[str] = []
    for ch in dict.fromkeys(name):
        if ch.isascii():
            continue
        if fold(ch) != ch:
            found.append(describe(ch))
    return found
