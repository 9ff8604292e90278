"""The compatibility checker of event contracts (issue 15 item 5): sync/canonical/compat.py over
small schema dicts, the statuses in sync/canonical/lifecycle.py, and bin/check_contracts.py
against a copy of the schemas and the lock. Pure: no database, no network."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from sync.canonical import compat
from sync.canonical.lifecycle import CURRENT, DEPRECATED, Lifecycle, lifecycle_problems

ROOT = Path(__file__).resolve().parents[2]


# --- statuses -------------------------------------------------------------------------------------
def test_the_statuses_are_checked():
    names = ["order.closed_won.v1", "order.closed_won.v2", "invoice.posted.v1"]
    assert lifecycle_problems(names, {}) == [
        "order.closed_won: the current version must be the highest one (order.closed_won.v2) and the only one; current now: "
        "order.closed_won.v1, order.closed_won.v2 — list the older ones as deprecated with a sunset"
    ]
    problems = lifecycle_problems(
        names, {"order.closed_won.v1": Lifecycle(DEPRECATED), "order.closed_won.v2": Lifecycle(DEPRECATED, date(2030, 1, 1)), "nope.v1": Lifecycle(CURRENT)}
    )
    assert any("nope.v1" in p and "no such schema" in p for p in problems)
    assert "order.closed_won.v1: deprecated without a sunset date" in problems
    assert any("current now: none" in p for p in problems)


# --- the compatibility checker ---------------------------------------------------------------------
BASE = {
    "type": "object",
    "required": ["order_number", "lines"],
    "additionalProperties": True,
    "properties": {
        "order_number": {"type": "string", "minLength": 1, "maxLength": 64},
        "note": {"type": "string", "description": "free text"},
        "closed_won_at": {"type": "string", "format": "date-time"},
        "lines": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 64}, "billing": {"enum": ["recurring", "one_time", "usage"]}}},
        },
    },
}


def edited(change) -> dict:
    schema = copy.deepcopy(BASE)
    change(schema)
    return schema


def line(schema: dict) -> dict:
    return schema["properties"]["lines"]["items"]["properties"]


BREAKING = {
    "property removed": (lambda s: s["properties"].pop("note"), "note", "property_removed"),
    "optional made required": (lambda s: s["required"].append("note"), "note", "required_added"),
    "new required property": (lambda s: (s["properties"].update(tax={"type": "string"}), s["required"].append("tax")), "tax", "required_added"),
    "type changed": (lambda s: s["properties"]["order_number"].update(type="integer"), "order_number", "type_changed"),
    "type widened is still a change": (lambda s: s["properties"]["note"].update(type=["string", "null"]), "note", "type_changed"),
    "format changed": (lambda s: s["properties"]["closed_won_at"].update(format="date"), "closed_won_at", "format_changed"),
    "format added": (lambda s: s["properties"]["note"].update(format="email"), "note", "format_changed"),
    "enum narrowed": (lambda s: line(s)["billing"].update(enum=["recurring", "one_time"]), "lines[].billing", "enum_narrowed"),
    "enum added": (lambda s: line(s)["sku"].update(enum=["A"]), "lines[].sku", "enum_narrowed"),
    "maxLength lowered": (lambda s: line(s)["sku"].update(maxLength=32), "lines[].sku", "tightened"),
    "minLength raised": (lambda s: s["properties"]["order_number"].update(minLength=3), "order_number", "tightened"),
    "minItems raised": (lambda s: s["properties"]["lines"].update(minItems=2), "lines", "tightened"),
    "maxItems added": (lambda s: s["properties"]["lines"].update(maxItems=10), "lines", "tightened"),
    "pattern added": (lambda s: s["properties"]["order_number"].update(pattern="^ORD-"), "order_number", "tightened"),
    "additionalProperties closed": (lambda s: s.update(additionalProperties=False), "(event)", "additional_closed"),
    "unknown keyword": (lambda s: s.update(allOf=[{"required": ["note"]}]), "(event)", "unsupported"),
}


@pytest.mark.parametrize("name", list(BREAKING))
def test_the_checker_flags_each_kind_of_breaking_change(name):
    change, path, kind = BREAKING[name]
    found = compat.compare(BASE, edited(change))
    assert [(c.path, c.kind, c.breaking) for c in found if c.breaking] == [(path, kind, True)], found


COMPATIBLE = {
    "optional property added": (lambda s: s["properties"].update(tax_lines={"type": "array"}), "tax_lines", "property_added"),
    "nested optional property added": (lambda s: line(s).update(charge_type={"enum": ["recurring"]}), "lines[].charge_type", "property_added"),
    "enum widened": (lambda s: line(s)["billing"]["enum"].append("milestone"), "lines[].billing", "enum_widened"),
    "maxLength raised": (lambda s: line(s)["sku"].update(maxLength=128), "lines[].sku", "loosened"),
    "required dropped": (lambda s: s["required"].remove("lines"), "lines", "required_dropped"),
}


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_the_checker_accepts_compatible_changes(name):
    change, path, kind = COMPATIBLE[name]
    found = compat.compare(BASE, edited(change))
    assert [(c.path, c.kind, c.breaking) for c in found] == [(path, kind, False)]


def test_wording_is_not_part_of_the_contract():
    reworded = edited(lambda s: (s.update(title="x", description="new words"), s["properties"]["note"].update(description="other", examples=["hi"])))
    assert compat.compare(BASE, reworded) == []
    assert compat.normalize(reworded) == compat.normalize(BASE)
    # a *property* called description is contract, not annotation
    assert compat.compare(BASE, edited(lambda s: s["properties"].update(description={"type": "string"})))[0].kind == "property_added"


# --- bin/check_contracts.py ------------------------------------------------------------------------
def _script():
    spec = importlib.util.spec_from_file_location("check_contracts", ROOT / "bin" / "check_contracts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_lock_matches_every_schema_file():
    out = io.StringIO()
    assert _script().run(out=out) == 0, out.getvalue()


@pytest.fixture
def workspace(tmp_path):
    """A copy of the schemas and the lock to edit."""
    script = _script()
    schemas = tmp_path / "schemas"
    shutil.copytree(script.SCHEMA_DIR, schemas)
    lock = tmp_path / "contracts.lock.json"
    shutil.copy(script.LOCK, lock)

    def run(update: bool = False) -> tuple[int, str]:
        out = io.StringIO()
        return script.run(update=update, schema_dir=schemas, lock=lock, out=out), out.getvalue()

    def edit(name: str, change) -> None:
        path = schemas / f"{name}.json"
        schema = json.loads(path.read_text())
        change(schema)
        path.write_text(json.dumps(schema, indent=2))

    return run, edit, schemas, lock


def test_a_breaking_edit_fails_and_update_refuses_to_lock_it(workspace):
    run, edit, _, lock = workspace
    before = lock.read_text()
    edit("order.closed_won.v1", lambda s: s["properties"]["lines"]["items"]["required"].append("billing"))
    code, out = run()
    assert code == 1 and "BREAKING order.closed_won.v1: lines[].billing: optional property made required (required_added)" in out
    assert run(update=True)[0] == 1 and lock.read_text() == before


def test_a_compatible_edit_needs_the_explicit_update_and_then_passes(workspace):
    run, edit, _, lock = workspace
    edit("invoice.posted.v1", lambda s: s["properties"].update(erp_note={"type": "string"}))
    code, out = run()
    assert code == 1 and "compatible invoice.posted.v1: erp_note: property added" in out and "--update" in out
    assert run(update=True)[0] == 0
    assert "erp_note" in json.loads(lock.read_text())["contracts"]["invoice.posted.v1"]["properties"]
    assert run()[0] == 0


def test_a_new_version_is_published_by_update_and_a_removed_one_fails(workspace):
    run, edit, schemas, lock = workspace
    shutil.copy(schemas / "usage.closed.v1.json", schemas / "usage.closed.v2.json")
    code, out = run()
    assert code == 1 and "new usage.closed.v2: not in the lock yet" in out
    assert "STATUS usage.closed:" in out  # v1 is still current: it must be deprecated with a sunset first
    (schemas / "usage.closed.v2.json").unlink()
    (schemas / "usage.closed.v1.json").unlink()
    code, out = run(update=True)
    assert code == 1 and "BREAKING usage.closed.v1: a published version's schema file is gone" in out
