"""Hand-written knowledge about how partners misspell Spec events: phrase rewrites, synonyms and aliases.

Everything here is data, read once when the name index is built. Phrases are written as people write event names; the
index normalises them with the same function it applies to incoming names, so tense, case, separators and word order
need not be spelled out (``Purchase Completed`` also covers ``purchase_completed`` and ``Completed Purchase``).

Design rule: a name matches only when *all* of its words are accounted for. An extra word that is not listed here as
optional for that event (``SMS`` in ``SMS Unsubscribed``, ``Soft`` in ``Email Soft Bounced``) makes the name a custom
event. That is what keeps false alarms rare, so add optional words sparingly: only words that restate the event's own
category or object.
"""

from __future__ import annotations

REWRITES: dict[tuple[str, ...], tuple[str, ...]] = {
    # Multi-word concepts first become one token, so that "in" or "up" can be dropped as stop words afterwards.
    ("log", "in"): ("signin",),
    ("logged", "in"): ("signin",),
    ("logs", "in"): ("signin",),
    ("login",): ("signin",),
    ("logon",): ("signin",),
    ("sign", "in"): ("signin",),
    ("signed", "in"): ("signin",),
    ("signs", "in"): ("signin",),
    ("signin",): ("signin",),
    ("sign", "up"): ("signup",),
    ("signed", "up"): ("signup",),
    ("signs", "up"): ("signup",),
    ("signup",): ("signup",),
    ("register",): ("signup",),
    ("registered",): ("signup",),
    ("registration",): ("signup",),
    ("sign", "out"): ("signout",),
    ("signed", "out"): ("signout",),
    ("signout",): ("signout",),
    ("log", "out"): ("signout",),
    ("logged", "out"): ("signout",),
    ("logout",): ("signout",),
    ("log", "off"): ("signout",),
    ("logoff",): ("signout",),
    ("in", "app"): ("inapp",),
    ("e", "mail"): ("email",),
    ("deep", "link"): ("deeplink",),
    ("push", "notification"): ("push",),
    ("push", "notifications"): ("push",),
    ("promo", "code"): ("coupon",),
    ("coupon", "code"): ("coupon",),
    ("discount", "code"): ("coupon",),
    ("promo",): ("promotion",),
    ("wish", "list"): ("wishlist",),
    ("live", "chat"): ("chat",),
    ("shopping", "cart"): ("cart",),
    ("basket",): ("cart",),
    ("mobile", "app"): ("application",),
    ("mobile", "application"): ("application",),
    ("app",): ("application",),
    ("payment", "information"): ("payment", "info"),
    ("payment", "details"): ("payment", "info"),
    ("hard", "bounced"): ("bounced",),
    ("hard", "bounce"): ("bounce",),
    ("hardbounced",): ("bounced",),
    ("hardbounce",): ("bounce",),
    ("check", "out"): ("checkout",),
    ("opt", "out"): ("optout",),
    ("opted", "out"): ("optout",),
    ("spamreport",): ("spam", "report"),
    ("spamreported",): ("spam", "reported"),
}
"""Token sequences (lower case, as split from the name) replaced before stemming; the longest match wins."""

STOP_WORDS: frozenset[str] = frozenset(
    [
        "the",
        "a",
        "an",
        "to",
        "from",
        "as",
        "of",
        "for",
        "has",
        "have",
        "had",
        "was",
        "were",
        "been",
        "is",
        "are",
        "be",
        "by",
        "on",
        "in",
        "into",
        "with",
        "at",
    ]
)
"""Words that carry no meaning in an event name; dropped after the rewrites."""

IRREGULAR: dict[str, str] = {
    "sent": "send",
    "began": "begin",
    "begun": "begin",
    "paid": "pay",
    "made": "make",
    "delivery": "deliver",
    "invitation": "invite",
    "installation": "install",
    "canceled": "cancel",
    "cancelled": "cancel",
}
"""Word forms the suffix rules get wrong, mapped to a form they get right."""

SYNONYMS: dict[str, str] = {
    "item": "product",
    "launch": "open",
    "begin": "start",
    "initiat": "start",
    "tap": "click",
    "finish": "complet",
}
"""Stems that mean the same thing in every Spec event they can appear in (applied after stemming)."""

ACCEPTED: dict[str, str] = {
    "User Signed Up": "Signed Up",
    "User Signed In": "Signed In",
    "User Signed Out": "Signed Out",
    "Custom Component Loaded": "Component Loaded",
}
"""Names the Spec pages themselves accept besides the event's own name; they pass without a finding."""

VARIANTS: dict[str, tuple[str, ...]] = {
    # E-commerce
    "Order Completed": (
        "Purchase",
        "Purchased",
        "Purchase Completed",
        "Purchase Made",
        "Made Purchase",
        "Order Placed",
        "Order Submitted",
        "Checkout Completed",
        "Transaction Completed",
        "Product Purchased",
    ),
    "Product Added": ("Add to Cart", "Cart Product Added"),
    "Product Removed": ("Remove from Cart", "Cart Product Removed"),
    "Product Viewed": ("Product Page Viewed", "Product Detail Viewed", "Product Details Viewed"),
    "Product List Viewed": ("Product Category Viewed",),
    "Product List Filtered": ("Products Filtered",),
    "Payment Info Entered": ("Payment Info Added", "Add Payment Info"),
    "Coupon Denied": ("Coupon Rejected", "Coupon Declined"),
    "Product Added to Wishlist": ("Add to Wishlist",),
    "Product Removed from Wishlist": ("Remove from Wishlist",),
    "Product Reviewed": ("Product Review Submitted", "Product Rated"),
    # Video
    "Video Playback Started": ("Video Played", "Video Play", "Playback Started"),
    "Video Playback Paused": ("Playback Paused",),
    "Video Playback Resumed": ("Playback Resumed",),
    "Video Playback Completed": ("Video Ended", "Playback Completed"),
    "Video Content Playing": ("Video Heartbeat", "Video Playing"),
    "Video Quality Updated": ("Video Quality Changed",),
    # Mobile
    "Application Installed": ("Install", "Installed", "First Open", "Application First Open", "First Application Open"),
    "Application Uninstalled": ("Uninstall", "Uninstalled", "Device Uninstall", "Device Uninstalled"),
    "Application Updated": ("Application Upgraded", "Application Version Changed", "Application Version Updated"),
    "Application Backgrounded": ("Application Closed", "Application Exit", "Application Exited"),
    "Push Notification Received": ("Push Delivered", "Push Impression"),
    "Push Notification Tapped": ("Push Opened",),
    # Email
    "Email Delivered": ("Email Received",),
    "Email Link Clicked": ("Email Clicked",),
    "Email Marked as Spam": (
        "Marked as Spam",
        "Reported as Spam",
        "Flagged as Spam",
        "Spam Report",
        "Spam Reported",
        "Spam Complaint",
        "Complained",
        "Complaint",
        "Complaint Received",
    ),
    "Unsubscribed": ("Email Opted Out", "Email Optout"),
    # Live Chat
    "Live Chat Conversation Started": ("Chat Started",),
    "Live Chat Conversation Ended": ("Chat Ended",),
    # AI Copilot
    "Feedback Submitted": ("Feedback Sent",),
    # B2B SaaS
    "Invite Sent": ("User Invited",),
    "Trial Ended": ("Trial Expired",),
}
"""Synonym phrases per Spec event (beyond its name and the catalog's legacy aliases)."""

OPTIONAL_WORDS: dict[str, tuple[str, ...]] = {
    "Unsubscribed": ("email", "user", "recipient", "contact", "list", "newsletter", "subscriber"),
    "Email Marked as Spam": ("email",),
    "Signed Up": ("user", "success", "successful", "succeeded", "completed"),
    "Signed In": ("user", "success", "successful", "succeeded"),
    "Signed Out": ("user",),
    "Trial Started": ("free",),
    "Trial Ended": ("free",),
    "Product Added": ("cart",),
    "Product Removed": ("cart",),
}
"""Words that may be added to an event's name without changing its meaning (they restate its category or object)."""

CATEGORY_OPTIONAL_WORDS: dict[str, tuple[str, ...]] = {
    "AI Copilot": ("ai", "copilot", "assistant"),
}
"""Optional words for every event of a category."""

DROPPABLE_WORDS: dict[str, tuple[str, ...]] = {
    "Video": ("playback",),
}
"""Words of a category's event names that partners often leave out (``Video Paused`` for ``Video Playback Paused``)."""

PLATFORM_WORDS: frozenset[str] = frozenset(["ios", "android"])
"""Platforms a name may carry at either end (``Notification Clicked iOS``); dropped before matching. Only the mobile
platforms: ``Web`` or ``Windows`` after ``Notification Clicked`` is a web or desktop notification, which the Spec's
mobile events do not cover."""
