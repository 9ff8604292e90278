"""Canonical event contracts: JSON Schema files in ./schemas, one per type and version.

A breaking change is a new version file (`order.closed_won.v2.json`); old versions keep
validating. Errors name the field (a dotted path) and the rule that failed.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from django.utils.dateparse import parse_datetime
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_FORMATS = FormatChecker()


@cache
def schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


@cache
def event_types() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in SCHEMA_DIR.glob("*.v*.json")))


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name), format_checker=_FORMATS)


def _path(prefix: str, parts) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _errors(name: str, document: dict, prefix: str) -> list[dict]:
    found = []
    for error in sorted(_validator(name).iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        parts = list(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            parts.append(missing)
            message = "This field is required."
        elif error.validator == "additionalProperties":
            message = error.message
        elif error.validator == "pattern":
            message = f"{error.instance!r} does not match the expected format ({schema(name) and error.schema.get('description') or error.schema['pattern']})."
        elif error.validator == "format":
            message = f"{error.instance!r} is not a valid {error.schema['format']}."
        elif error.validator == "enum":
            message = f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}."
        else:
            message = error.message
        found.append({"field": _path(prefix, parts), "message": message, "code": error.validator})
    return found


def validate_envelope(envelope) -> list[dict]:
    """All problems with an envelope and its data, as [{field, message, code}]; [] when valid."""
    if not isinstance(envelope, dict):
        return [{"field": None, "message": "An event must be a JSON object.", "code": "type"}]
    problems = _errors("envelope", envelope, "")
    event_type = envelope.get("type")
    if isinstance(event_type, str) and not any(p["field"] == "type" for p in problems):
        if event_type not in event_types():
            problems.append({"field": "type", "message": f"Unknown event type {event_type!r}. Known: {', '.join(event_types())}.", "code": "enum"})
        elif isinstance(envelope.get("data"), dict):
            problems.extend(_errors(event_type, envelope["data"], "data"))
    return problems


def money(value) -> Decimal:
    return Decimal(str(value if value not in (None, "") else "0"))


def when(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return parse_datetime(str(value).replace("Z", "+00:00"))
