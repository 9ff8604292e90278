"""Is a change to a published event contract compatible? (docs/CONTRACTS.md, bin/check_contracts.py)

A published version is a promise to everyone who sends it: an event that was valid stays valid,
and every field it guaranteed keeps its meaning. `compare(old, new)` lists every difference
between two JSON Schemas as a `Change`, each either compatible or breaking:

- compatible: a new optional property; a constraint loosened (a higher maxLength, a lower
  minimum, an enum that gains a value, a `required` entry dropped, a pattern removed,
  additionalProperties opened);
- breaking: a property removed; an optional property made required (or a new required one);
  a type or format changed; an enum narrowed; a constraint tightened or added (min/max
  lengths, items, properties, numbers, a new or changed pattern or multipleOf, uniqueItems);
  additionalProperties closed; any change to a keyword these rules do not know (allOf, $ref,
  if/then, …), which the checker cannot prove harmless.

Annotations (title, description, $comment, examples, default, deprecated) are not part of the
contract: `normalize` drops them, so wording can improve without touching the lock. Pure
Python, no Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"})
# raising one of these (or adding it) tightens; lowering (or removing) loosens
LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains"})
# lowering one of these (or adding it) tightens; raising (or removing) loosens
UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains"})
# keywords whose value is one subschema / a list of them / a map of them (normalize walks into them)
_ONE = frozenset({"items", "additionalProperties", "contains", "not", "if", "then", "else", "propertyNames", "unevaluatedItems", "unevaluatedProperties"})
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_MAP = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})


@dataclass(frozen=True)
class Change:
    path: str  # where in the event: "lines[].sku", "(event)" for the top level
    kind: str  # property_added, property_removed, required_added, type_changed, enum_narrowed, tightened, …
    breaking: bool
    message: str

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'compatible'} {self.path}: {self.message}"


def normalize(schema):
    """The contract part of a schema: annotations dropped, keys sorted (the lock's form)."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key in sorted(schema):
        value = schema[key]
        if key in ANNOTATIONS:
            continue
        if key in _ONE:
            out[key] = normalize(value)
        elif key in _MANY and isinstance(value, list):
            out[key] = [normalize(v) for v in value]
        elif key in _MAP and isinstance(value, dict):
            out[key] = {name: normalize(sub) for name, sub in sorted(value.items())}
        else:
            out[key] = value
    return out


def _where(path: str) -> str:
    return path or "(event)"


def _key(value) -> str:
    return json.dumps(value, sort_keys=True)


def _types(value) -> set[str]:
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


def compare(old, new, path: str = "") -> list[Change]:
    """Every difference between two schemas (normalized or not) as Changes, in a stable order."""
    old, new = normalize(old), normalize(new)
    if old == new:
        return []
    where = _where(path)
    if isinstance(old, bool) or isinstance(new, bool):
        loosened = new is True or old is False
        return [Change(where, "loosened" if loosened else "tightened", not loosened, f"schema {old!r} → {new!r}")]
    changes: list[Change] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key == "properties":
            changes += _properties(before or {}, after or {}, path)
        elif key == "required":
            changes += _required(set(before or []), set(after or []), old.get("properties") or {}, path)
        elif key == "type":
            changes.append(Change(where, "type_changed", True, f"type {sorted(_types(before)) or 'any'} → {sorted(_types(after)) or 'any'}"))
        elif key == "format":
            changes.append(Change(where, "format_changed", True, f"format {before!r} → {after!r}"))
        elif key == "enum":
            changes += _enum(before, after, where)
        elif key in LOWER_BOUNDS or key in UPPER_BOUNDS:
            changes.append(_bound(key, before, after, where))
        elif key in ("pattern", "multipleOf", "const"):
            if after is None:
                changes.append(Change(where, "loosened", False, f"{key} {before!r} removed"))
            else:
                changes.append(Change(where, "tightened", True, f"{key} {before!r} → {after!r}"))
        elif key == "uniqueItems":
            tight = bool(after) and not before
            changes.append(Change(where, "tightened" if tight else "loosened", tight, f"uniqueItems {before!r} → {after!r}"))
        elif key == "additionalProperties":
            changes += _additional(before, after, path)
        elif key == "items" and isinstance(before, dict) and isinstance(after, dict):
            changes += compare(before, after, f"{path}[]")
        elif key == "items" and after is None:
            changes.append(Change(where, "loosened", False, "items constraint removed"))
        else:
            changes.append(Change(where, "unsupported", True, f"{key} changed ({_key(before)} → {_key(after)}): the checker cannot prove this compatible"))
    return changes


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _properties(before: dict, after: dict, path: str) -> list[Change]:
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(Change(_child(path, name), "property_removed", True, "property removed"))
        elif name not in before:
            changes.append(Change(_child(path, name), "property_added", False, "property added"))
        else:
            changes += compare(before[name], after[name], _child(path, name))
    return changes


def _required(before: set, after: set, declared: dict, path: str) -> list[Change]:
    changes = []
    for name in sorted(after - before):
        what = "optional property made required" if name in declared else "new required property"
        changes.append(Change(_child(path, name), "required_added", True, what))
    for name in sorted(before - after):
        changes.append(Change(_child(path, name), "required_dropped", False, "no longer required"))
    return changes


def _enum(before, after, where: str) -> list[Change]:
    if after is None:
        return [Change(where, "enum_widened", False, "enum removed (any value)")]
    if before is None:
        return [Change(where, "enum_narrowed", True, f"enum added: {after!r}")]
    old, new = {_key(v): v for v in before}, {_key(v): v for v in after}
    out = []
    gone = [old[k] for k in sorted(set(old) - set(new))]
    added = [new[k] for k in sorted(set(new) - set(old))]
    if gone:
        out.append(Change(where, "enum_narrowed", True, f"enum loses {gone!r}"))
    if added:
        out.append(Change(where, "enum_widened", False, f"enum gains {added!r}"))
    return out


def _bound(key: str, before, after, where: str) -> Change:
    if after is None:
        return Change(where, "loosened", False, f"{key} {before!r} removed")
    if before is None:
        return Change(where, "tightened", True, f"{key} {after!r} added")
    tighter = after > before if key in LOWER_BOUNDS else after < before
    return Change(where, "tightened" if tighter else "loosened", tighter, f"{key} {before!r} → {after!r}")


def _additional(before, after, path: str) -> list[Change]:
    where = _where(path)
    open_before = before is None or before is True
    open_after = after is None or after is True
    if open_before and open_after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        return compare(before, after, f"{path}.*" if path else "*")
    if open_after:
        return [Change(where, "loosened", False, "additionalProperties opened")]
    if before is False:  # closed before: a schema for extra keys now admits some of them
        return [Change(where, "loosened", False, f"additionalProperties false → {_key(after)}")]
    return [Change(where, "additional_closed", True, f"additionalProperties {_key(before)} → {_key(after)}: undeclared keys refused")]


@dataclass
class Report:
    breaking: list[tuple[str, Change]]
    compatible: list[tuple[str, Change]]
    unpublished: list[str]  # schema files the lock does not hold yet
    removed: list[str]  # published versions whose file is gone

    @property
    def clean(self) -> bool:
        """The files are exactly what the lock publishes."""
        return not (self.breaking or self.compatible or self.unpublished or self.removed)

    @property
    def updatable(self) -> bool:
        """Only new versions and compatible changes: `--update` may write the lock."""
        return not (self.breaking or self.removed)


def check(files: dict[str, dict], lock: dict[str, dict]) -> Report:
    """Schema files (name → schema) against the lock (name → normalized schema)."""
    report = Report([], [], [], [])
    for name in sorted(set(lock) | set(files)):
        if name not in files:
            report.removed.append(name)
        elif name not in lock:
            report.unpublished.append(name)
        else:
            for change in compare(lock[name], files[name]):
                (report.breaking if change.breaking else report.compatible).append((name, change))
    return report


def lock_of(files: dict[str, dict]) -> dict:
    return {"contracts": {name: normalize(files[name]) for name in sorted(files)}}
