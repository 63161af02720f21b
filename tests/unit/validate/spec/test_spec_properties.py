"""Property, trait, page/screen and integrations findings: always warnings, each naming what to send."""

from __future__ import annotations

import pytest

from sidecar.model import CallType
from sidecar.validate.spec import Code, Finding, Severity, SpecChecker


@pytest.fixture(scope="module")
def checker() -> SpecChecker:
    """One strict checker for the module."""
    return SpecChecker()


def _by_field(findings: list[Finding]) -> dict[str, Finding]:
    assert all(f.severity is Severity.WARNING for f in findings if f.code != Code.EVENT_NAME)
    return {f.field: f for f in findings}


def test_conforming_order_completed_has_no_findings(checker: SpecChecker) -> None:
    """A Spec event with documented, well-typed properties (and extra custom ones) is clean."""
    properties = {
        "order_id": "o1",
        "revenue": 25.0,
        "currency": "USD",
        "products": [{"product_id": "p1", "price": 12.5, "quantity": 2}],
        "gift_wrap": True,
    }
    assert checker.check(CallType.TRACK, "Order Completed", properties) == []


def test_wrong_types_and_near_miss_property_names(checker: SpecChecker) -> None:
    """revenue as a string, products not a list of objects, orderId/order-id for order_id: warnings with fixes."""
    findings = _by_field(
        checker.check(
            CallType.TRACK,
            "Order Completed",
            {"orderId": "o1", "revenue": "25.00", "products": [{"price": "12.5"}, "sku-1"]},
        )
    )
    assert findings["properties.orderId"].code == Code.PROPERTY_NAME
    assert findings["properties.orderId"].suggestion == "order_id"
    assert findings["properties.revenue"].code == Code.PROPERTY_TYPE
    assert "a number" in findings["properties.revenue"].message
    assert findings["properties.products[0].price"].code == Code.PROPERTY_TYPE
    assert findings["properties.products[1]"].code == Code.PROPERTY_TYPE
    assert "object" in findings["properties.products[1]"].message
    (dash,) = checker.check(CallType.TRACK, "Order Completed", {"order-id": "o1"})
    assert dash.suggestion == "order_id"


def test_products_must_be_an_array(checker: SpecChecker) -> None:
    """products sent as an object is a type warning on products itself."""
    (finding,) = checker.check(CallType.TRACK, "Cart Viewed", {"products": {"sku": "a"}})
    assert finding.field == "properties.products"
    assert "an array" in finding.message


def test_near_miss_event_properties_are_checked_against_the_suggested_event(checker: SpecChecker) -> None:
    """A near-miss name's properties are checked as the Spec event it means, so one run shows every fix."""
    findings = checker.check(CallType.TRACK, "Purchase", {"OrderID": "o1"})
    assert [f.code for f in findings] == [Code.EVENT_NAME, Code.PROPERTY_NAME]


def test_reserved_track_properties_apply_to_custom_events(checker: SpecChecker) -> None:
    """revenue, currency and value are reserved on every track call, Spec event or not."""
    findings = checker.check(CallType.TRACK, "Invoice Paid", {"Revenue": "10", "value": 3, "x": "y"})
    assert [(f.code, f.field, f.suggestion) for f in findings] == [
        (Code.PROPERTY_NAME, "properties.Revenue", "revenue"),
        (Code.PROPERTY_TYPE, "properties.Revenue", None),
    ]


def test_null_values_are_not_type_errors(checker: SpecChecker) -> None:
    """A documented key sent as null is left alone (the type is unknown, not wrong)."""
    assert checker.check(CallType.TRACK, "Order Completed", {"revenue": None}) == []


def test_identify_traits(checker: SpecChecker) -> None:
    """email must be a string, createdAt an ISO-8601 date; snake_case forms are accepted; misspellings named."""
    findings = _by_field(
        checker.check(
            CallType.IDENTIFY,
            None,
            {
                "email": 42,
                "createdAt": 1700000000,
                "first_name": "Ada",
                "birthday": "1815-12-10",
                "E-Mail": "a@b.c",
                "address": {"city": "London"},
            },
        )
    )
    assert findings["traits.email"].code == Code.TRAIT_TYPE
    assert "a string" in findings["traits.email"].message
    assert findings["traits.createdAt"].code == Code.TRAIT_TYPE
    assert "ISO-8601" in findings["traits.createdAt"].message
    assert findings["traits.E-Mail"].code == Code.TRAIT_NAME
    assert findings["traits.E-Mail"].suggestion == "email"
    assert set(findings) == {"traits.email", "traits.createdAt", "traits.E-Mail"}


@pytest.mark.parametrize("value", ["2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00"])
def test_iso_dates_pass(checker: SpecChecker, value: str) -> None:
    """Date-only and full ISO-8601 timestamps are accepted for date traits."""
    assert checker.check(CallType.IDENTIFY, None, {"createdAt": value}) == []


def test_group_traits_accept_numeric_employees(checker: SpecChecker) -> None:
    """employees may be a number (the Spec's own example sends one); other group traits are still typed."""
    assert checker.check(CallType.GROUP, None, {"employees": 120, "created_at": "2020-01-01"}) == []
    (finding,) = checker.check(CallType.GROUP, None, {"industry": 7})
    assert finding.field == "traits.industry"


def test_page_and_screen_reserved_properties(checker: SpecChecker) -> None:
    """Page keywords must be an array and URL is url; screen name must be a string."""
    findings = _by_field(checker.check(CallType.PAGE, "Home", {"URL": "https://x", "keywords": "a,b"}))
    assert findings["properties.URL"].suggestion == "url"
    assert findings["properties.keywords"].code == Code.PROPERTY_TYPE
    (finding,) = checker.check(CallType.SCREEN, "Home", {"name": 3})
    assert finding.field == "properties.name"


def test_integrations_keys(checker: SpecChecker) -> None:
    """integrations keys are case-sensitive: all -> All, google analytics -> Google Analytics; values typed."""
    findings = _by_field(
        checker.check(
            CallType.TRACK,
            "Invoice Paid",
            None,
            {"all": False, "google analytics": True, "Mixpanel": "yes", "My Webhook": {"x": 1}, "All": 0},
        )
    )
    assert findings["integrations.all"].suggestion == "All"
    assert findings["integrations.google analytics"].suggestion == "Google Analytics"
    assert findings["integrations.Mixpanel"].code == Code.INTEGRATION_TYPE
    assert findings["integrations.All"].code == Code.INTEGRATION_TYPE
    assert "integrations.My Webhook" not in findings
