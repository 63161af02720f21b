"""Loads the labelled corpora under ``corpus/`` and measures the checker on them (shared by tests and the bench)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.validate.spec import SpecChecker, Verdict

CORPUS = Path(__file__).parent / "corpus"


def _rows(name: str) -> list[list[str]]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def near_misses() -> list[tuple[str, str]]:
    """(name, expected Spec event) pairs."""
    return [(row[0], row[1]) for row in _rows("near_misses.tsv")]


def custom_names() -> list[str]:
    """Realistic custom partner event names."""
    return [row[0] for row in _rows("custom.txt")]


@dataclass(frozen=True)
class RealName:
    """One real partner event name: its label (exact, custom or the Spec event it means) and where it is listed."""

    name: str
    label: str
    kind: str
    sources: tuple[str, ...]


def partners_real() -> list[RealName]:
    """The real names read from segmentio/segment-docs."""
    return [RealName(r[0], r[1], r[2], tuple(r[3].split(";"))) for r in _rows("partners_real.tsv")]


@dataclass(frozen=True)
class Score:
    """Recall on near-misses (right suggestion required) and the false-alarm rate on custom names."""

    caught: int
    near_misses: int
    flagged: int
    customs: int
    missed: tuple[str, ...]
    false_alarms: tuple[str, ...]

    @property
    def recall(self) -> float:
        """Share of near-misses caught with the right suggestion."""
        return self.caught / self.near_misses if self.near_misses else 1.0

    @property
    def false_alarm_rate(self) -> float:
        """Share of custom names flagged."""
        return self.flagged / self.customs if self.customs else 0.0


def score(checker: SpecChecker, pairs: list[tuple[str, str]], customs: list[str]) -> Score:
    """Measure ``checker`` on labelled near-misses and custom names."""
    missed = []
    for name, expected in pairs:
        verdict, event = checker.classify(name)
        if verdict is not Verdict.NEAR_MISS or event is None or event.name != expected:
            missed.append(f"{name} -> {event.name if event else verdict.value} (want {expected})")
    alarms = [name for name in customs if checker.classify(name)[0] is not Verdict.CUSTOM]
    return Score(
        caught=len(pairs) - len(missed),
        near_misses=len(pairs),
        flagged=len(alarms),
        customs=len(customs),
        missed=tuple(missed),
        false_alarms=tuple(alarms),
    )


def real_score(checker: SpecChecker, kinds: tuple[str, ...] = ("track",)) -> Score:
    """Measure ``checker`` on the real partner names of the given kinds."""
    rows = [row for row in partners_real() if row.kind in kinds]
    pairs = [(row.name, row.label) for row in rows if row.label not in ("exact", "custom")]
    customs = [row.name for row in rows if row.label == "custom"]
    return score(checker, pairs, customs)
