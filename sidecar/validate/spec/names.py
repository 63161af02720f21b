"""Event-name matching: is a name a Spec event, a near-miss of one, or a custom event?

A name is first folded to the letters a person reads (:mod:`._lookalikes`: full-width forms, combining marks,
invisible characters and Cyrillic or Greek look-alikes undone). It is then reduced to a *key*: its words split at
spaces, punctuation and camelCase, lower-cased, multi-word concepts
joined (``log in`` -> ``signin``), stop words dropped, each word stemmed (``opened``, ``opens`` -> ``open``) and
mapped through a few synonyms (``item`` -> ``product``), then sorted. Sorting makes word order irrelevant (``Completed
Order`` and ``Order Completed`` share a key). A platform named at either end (``Notification Clicked iOS``, ``Android
Push Opened``) is dropped: the platform belongs in ``context``, and an event name that carries it still means the
Spec event; a bare ``Notification`` beside a mobile platform is a push notification.

The index maps keys to Spec events. It is built once from every Spec name, the catalog's legacy aliases and the
hand-written variants of :mod:`._aliases`, each expanded with the optional words of its event. A name whose key is in
the index but which is not spelled exactly like the Spec event is a near-miss. A key not in the index gets one more
chance when exactly one of its words is unknown to the index: that word, if it is one edit away from a Spec word of
five letters or more, is corrected (``Order Compelted``). Anything else is a custom event.

The key must account for *every* word of the name; there is no partial or fuzzy overlap score. That is the design
choice that keeps custom events such as ``SMS Delivered`` or ``Ticket Created`` from being flagged.
"""

from __future__ import annotations

import enum
import itertools
import re
from dataclasses import dataclass

from sidecar.validate.spec import _aliases
from sidecar.validate.spec._lookalikes import fold
from sidecar.validate.spec.catalog import Catalog, SpecEvent

Key = tuple[str, ...]

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL_SPLIT = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_MAX_REWRITE = max(len(phrase) for phrase in _aliases.REWRITES)
_TYPO_MIN_LENGTH = 5
_IOS = re.compile(r"iOS")


class Verdict(enum.Enum):
    """What a name is, relative to the Spec."""

    EXACT = "exact"
    """The exact name of a Spec event, or a form the Spec page accepts."""
    NEAR_MISS = "near_miss"
    """Means a Spec event but is spelled otherwise."""
    CUSTOM = "custom"
    """Not a Spec event."""


@dataclass(frozen=True, slots=True)
class NameMatch:
    """The verdict on one name and, unless custom, the Spec event it means."""

    verdict: Verdict
    event: SpecEvent | None = None


CUSTOM = NameMatch(Verdict.CUSTOM)
"""The verdict shared by every custom name."""


def split_words(name: str) -> list[str]:
    """The lower-cased words of a name, split at non-alphanumerics and camelCase boundaries (``iOS`` kept whole)."""
    if "OS" in name:
        name = _IOS.sub(" ios ", name)
    words: list[str] = []
    for part in _WORD_SPLIT.split(name):
        if part:
            words.extend(piece.lower() for piece in _CAMEL_SPLIT.split(part) if piece)
    return words


def _drop_platform(words: list[str]) -> list[str]:
    """``words`` without the platform names at either end; a bare ``notification`` beside one becomes ``push``."""
    start, end = 0, len(words)
    while start < end and words[start] in _aliases.PLATFORM_WORDS:
        start += 1
    while end > start and words[end - 1] in _aliases.PLATFORM_WORDS:
        end -= 1
    if start == 0 and end == len(words):
        return words
    kept = words[start:end]
    if "push" not in kept:
        kept = ["push" if word in ("notification", "notifications") else word for word in kept]
    return kept


def stem(word: str) -> str:
    """A crude, consistent stem: both sides of every comparison go through it, so it only has to agree with itself."""
    word = _aliases.IRREGULAR.get(word, word)
    if len(word) <= 3:
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    else:
        if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            word = word[:-1]  # plural first, so that "impressions" and "impression" meet
        if (word.endswith("ing") and len(word) > 5) or (word.endswith("ion") and len(word) > 6):
            word = word[:-3]
        elif word.endswith("ed") and len(word) > 4:
            word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _rewrite(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_MAX_REWRITE, len(words) - i), 0, -1):
            replacement = _aliases.REWRITES.get(tuple(words[i : i + size]))
            if replacement is not None:
                out.extend(replacement)
                i += size
                break
        else:
            out.append(words[i])
            i += 1
    return out


def name_key(name: str) -> Key:
    """The order-free key of a name (see the module docstring)."""
    stems = []
    for word in _rewrite(_drop_platform(split_words(fold(name)))):
        if word in _aliases.STOP_WORDS:
            continue
        stemmed = stem(word)
        stems.append(_aliases.SYNONYMS.get(stemmed, stemmed))
    return tuple(sorted(stems))


def _with_optional(key: Key, optional: list[str], most: int = 2) -> list[Key]:
    keys = [key]
    for count in range(1, min(most, len(optional)) + 1):
        for extra in itertools.combinations(optional, count):
            keys.append(tuple(sorted(key + extra)))
    return keys


def _one_edit_forms(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


class NameIndex:
    """Every known key of every Spec event, built once; :meth:`match` is a pure function of the name."""

    __slots__ = ("_accepted", "_exact", "_index", "_longest_typo_word", "_typo_forms", "_vocabulary")

    def __init__(self, catalog: Catalog) -> None:
        """Index the catalog: Spec names first, so that no alias can take a Spec event's own key."""
        by_name = catalog.by_name()
        self._exact: dict[str, SpecEvent] = dict(by_name)
        self._accepted: dict[str, SpecEvent] = {
            alias: by_name[target] for alias, target in _aliases.ACCEPTED.items() if target in by_name
        }
        self._index: dict[Key, SpecEvent] = {}
        for event in catalog.events:
            self._index.setdefault(name_key(event.name), event)
        phrases: list[tuple[SpecEvent, str]] = []
        for event in catalog.events:
            phrases.extend((event, alias) for alias in event.legacy_aliases)
            phrases.extend((event, variant) for variant in _aliases.VARIANTS.get(event.name, ()))
            for word in _aliases.DROPPABLE_WORDS.get(event.category, ()):
                kept = [w for w in event.name.split() if w.lower() != word]
                if len(kept) < len(event.name.split()):
                    phrases.append((event, " ".join(kept)))
        for event, phrase in phrases:
            self._index.setdefault(name_key(phrase), event)
        # Optional words last, and only where they collide with nothing more specific.
        for event in catalog.events:
            optional = [
                stem(w)
                for w in (
                    *_aliases.OPTIONAL_WORDS.get(event.name, ()),
                    *_aliases.CATEGORY_OPTIONAL_WORDS.get(event.category, ()),
                )
            ]
            if not optional:
                continue
            bases = [name_key(event.name)] + [name_key(p) for e, p in phrases if e is event]
            for base in bases:
                for key in _with_optional(base, optional):
                    self._index.setdefault(key, event)
        self._vocabulary: frozenset[str] = frozenset(word for key in self._index for word in key)
        self._typo_forms: dict[str, set[str]] = {}
        for key in self._index:
            for word in key:
                if len(word) >= _TYPO_MIN_LENGTH:
                    for form in _one_edit_forms(word):
                        self._typo_forms.setdefault(form, set()).add(word)
        # A word one edit away from a Spec word is at most one letter longer than it; a longer unknown word is never
        # expanded into its one-edit forms (that would cost the square of its length, and a caller chooses the length).
        self._longest_typo_word = max((len(form) for form in self._typo_forms), default=0)

    def __len__(self) -> int:
        """How many distinct keys the index holds."""
        return len(self._index)

    def match(self, name: str) -> NameMatch:
        """Classify one event name. Cost: one split and one dict lookup; call it through a cache on the hot path."""
        event = self._exact.get(name) or self._accepted.get(name)
        if event is not None:
            return NameMatch(Verdict.EXACT, event)
        folded = fold(name)
        if folded != name:
            # Reads as a Spec name but is not one on the wire: a near-miss, never exact.
            event = self._exact.get(folded) or self._accepted.get(folded)
            if event is not None:
                return NameMatch(Verdict.NEAR_MISS, event)
        key = name_key(folded)
        if not key:
            return CUSTOM
        event = self._index.get(key) or self._correct_typo(key)
        if event is None:
            return CUSTOM
        return NameMatch(Verdict.NEAR_MISS, event)

    def _correct_typo(self, key: Key) -> SpecEvent | None:
        # Only a name with exactly one unknown word can be one typo away from a Spec name; most custom names have
        # two or more unknown words and leave here after a few set lookups.
        unknown = [position for position, word in enumerate(key) if word not in self._vocabulary]
        if len(unknown) != 1:
            return None
        position = unknown[0]
        word = key[position]
        if not _TYPO_MIN_LENGTH <= len(word) <= self._longest_typo_word + 1:
            return None
        candidates: set[str] = set()
        for form in _one_edit_forms(word):
            candidates |= self._typo_forms.get(form, set())
        found: SpecEvent | None = None
        for candidate in candidates:
            fixed = tuple(sorted((*key[:position], candidate, *key[position + 1 :])))
            event = self._index.get(fixed)
            if event is not None:
                if found is not None and found is not event:
                    return None  # ambiguous: better silent than wrong
                found = event
        return found
