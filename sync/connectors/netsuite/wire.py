"""NetSuite's JSON on the wire, with money kept exact.

NetSuite sends and takes amounts as JSON numbers. The standard `json` module turns them
into floats (and cannot write a Decimal), which would lose cents on large amounts, so both
the connector and the sandbox use these two functions: numbers with a fraction are read
as Decimal and Decimals are written as plain JSON numbers with their exact digits.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    return "".join(_encode(value))


def _encode(value: Any):
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if i:
                yield ","
            yield json.dumps(str(key))
            yield ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _encode(item)
        yield "]"
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        yield format(value, "f")
    elif isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        yield json.dumps(value)
    elif isinstance(value, float):
        yield repr(value) if math.isfinite(value) else "null"
    elif isinstance(value, datetime):
        yield json.dumps(value.isoformat().replace("+00:00", "Z"))
    elif isinstance(value, date):
        yield json.dumps(value.isoformat())
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


class ExactEncoder(json.JSONEncoder):
    """For Django's JSONField: `json.dumps(value, cls=ExactEncoder)` keeps Decimals exact."""

    def encode(self, o: Any) -> str:
        return dumps(o)


class ExactDecoder(json.JSONDecoder):
    def __init__(self, *args, **kwargs):
        kwargs["parse_float"] = Decimal
        super().__init__(*args, **kwargs)
