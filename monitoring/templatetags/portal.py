"""The portal's template filters and tags: registrations of monitoring.formatting, nothing more."""

from __future__ import annotations

from django import template

from monitoring import formatting
from q2c_portal import redaction

register = template.Library()

# secrets never reach the screen (q2c_portal/redaction.py): `redact` for text and values, `redacted_json` for <pre>
register.filter("redact", redaction.redact)
register.filter("redacted_json", redaction.pretty)
register.filter("duration", formatting.duration)
register.filter("age", formatting.age)
register.filter("until", formatting.until)
register.filter("pct", formatting.pct)
register.filter("span", formatting.span)
register.filter("is_past", formatting.is_past)
register.filter("share", formatting.share)
register.filter("get", formatting.get_item)
register.filter("window_label", formatting.window_label)
register.filter("day_label", formatting.day_label)
register.filter("moment", formatting.moment)
register.simple_tag(formatting.money, name="money")
register.simple_tag(formatting.money_short, name="money_short")


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters changed (None/'' removes one)."""
    return formatting.query_string(context["request"].GET, **changes)
