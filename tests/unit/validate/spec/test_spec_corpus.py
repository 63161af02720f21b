"""The checker against labelled corpora: our own near-misses and custom names, and real partner event names."""

from __future__ import annotations

import pytest
from spec_corpus import custom_names, near_misses, partners_real, real_score, score

from sidecar.validate.spec import SpecChecker, Verdict, load_catalog


@pytest.fixture(scope="module")
def checker() -> SpecChecker:
    """One strict checker for the module (building it is the expensive part)."""
    return SpecChecker()


def test_corpus_is_big_enough_and_covers_every_category() -> None:
    """The corpus has at least 100 near-misses spread over every catalog category, and 100 custom names."""
    catalog = load_catalog()
    by_name = catalog.by_name()
    pairs = near_misses()
    assert len(pairs) >= 100
    assert len(custom_names()) >= 100
    assert all(expected in by_name for _, expected in pairs), "a label is not a Spec event name"
    assert {by_name[expected].category for _, expected in pairs} == set(catalog.categories)
    assert not {name for name, _ in pairs} & set(by_name), "an exact Spec name is labelled a near-miss"


def test_every_exact_spec_name_passes(checker: SpecChecker) -> None:
    """Every Spec event name, sent exactly, is EXACT and yields no event-name finding."""
    for event in load_catalog().events:
        assert checker.classify(event.name) == (Verdict.EXACT, event)


def test_near_miss_recall_is_at_least_95_percent(checker: SpecChecker) -> None:
    """At least 95% of the near-misses are caught, each with the Spec event it means."""
    result = score(checker, near_misses(), [])
    assert result.recall >= 0.95, result.missed


def test_custom_false_alarms_are_at_most_2_percent(checker: SpecChecker) -> None:
    """At most 2% of realistic custom partner names are flagged."""
    result = score(checker, [], custom_names())
    assert result.false_alarm_rate <= 0.02, result.false_alarms


def test_real_partner_names_recall_and_false_alarms(checker: SpecChecker) -> None:
    """On real partner track events: at least 80% of near-misses caught, at most 3% of custom names flagged."""
    result = real_score(checker)
    assert result.near_misses >= 25
    assert result.customs >= 150
    assert result.recall >= 0.80, result.missed
    assert result.false_alarm_rate <= 0.03, result.false_alarms


def test_real_exact_names_pass(checker: SpecChecker) -> None:
    """Every real partner name labelled exact is a Spec event name and passes."""
    exact = [row.name for row in partners_real() if row.label == "exact"]
    assert exact
    assert all(checker.classify(name)[0] is Verdict.EXACT for name in exact)


def test_real_corpus_records_its_sources() -> None:
    """Every real name names the segment-docs file it was read from."""
    for row in partners_real():
        assert row.sources
        assert all(s.startswith("src/connections/sources/catalog/cloud-apps/") for s in row.sources), row
