"""Stripe's form encoding: `items[0][price_data][currency]=usd` ↔ nested dicts and lists."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class ParamError(ValueError):
    def __init__(self, message: str, param: str = ""):
        super().__init__(message)
        self.param = param


def _listify(node):
    """Dicts whose keys are all indexes ("0", "1", or "" for `a[]=`) become lists, in index order."""
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(isinstance(k, int) for k in node):
            return [node[k] for k in sorted(node)]
        return node
    return node


def decode(body: str) -> dict:
    """Form (or query) string → nested params, as Stripe reads them."""
    result: dict = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match:
            raise ParamError(f"Invalid parameter name: {raw_key}", raw_key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = result
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            key: str | int = part
            if part.isdigit() and i > 0:
                key = int(part)
            elif part == "" and i > 0:
                key = len([k for k in node if isinstance(k, int)])  # `expand[]=a&expand[]=b`
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = {}
                    node[key] = child
                node = child
    return _listify(result)


def encode(params: dict, prefix: str = "") -> list[tuple[str, str]]:
    """The inverse (used by tests and the simulator's own clients)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(encode(value, name))
        elif isinstance(value, (list, tuple)):
            pairs.extend(encode({i: v for i, v in enumerate(value)}, name))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs


# --- typed readers, with Stripe's own wording for bad values ---------------------------------
def as_int(value, param: str, *, minimum: int | None = None) -> int:
    try:
        result = int(str(value))
    except (TypeError, ValueError):
        raise ParamError(f"Invalid integer: {value}", param) from None
    if minimum is not None and result < minimum:
        raise ParamError(f"This value must be greater than or equal to {minimum}.", param)
    return result


def as_bool(value, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0", ""):
        return False
    raise ParamError(f"Invalid boolean: {value}", param)


def as_metadata(value, param: str = "metadata") -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ParamError("Invalid hash", param)
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise ParamError("Invalid string: metadata values must be strings", f"{param}[{key}]")
        if len(str(key)) > 40:
            raise ParamError("Metadata keys must be at most 40 characters.", f"{param}[{key}]")
        if len(str(item)) > 500:
            raise ParamError("Metadata values must be at most 500 characters.", f"{param}[{key}]")
    return {str(k): str(v) for k, v in value.items()}


def as_list(value, param: str) -> list:
    if value in (None, ""):
        return []
    if isinstance(value, dict):  # `items[a]=…` is not an array
        raise ParamError("Invalid array", param)
    if not isinstance(value, list):
        raise ParamError("Invalid array", param)
    return value


def only(params: dict, allowed: set[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed:
            name = f"{prefix}[{key}]" if prefix else key
            raise ParamError(f"Received unknown parameter: {name}", name)
