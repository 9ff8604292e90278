"""Recompute exception cause keys with the normalisation that drops numbers, amounts, line
indexes, timestamps and vendor ids (sync/engine/exceptions.py), so identical causes recorded
before it merge into one root-cause group.

Open exceptions also get the fingerprint the engine now computes, so the next occurrence of
the same failure counts on the same row — only where the stored fingerprint provably came from
the old cause key with no extra part (flow step failures); the rest keep theirs. Both
normalisations are frozen here: a later change to the engine's must not rewrite history.
"""

import hashlib
import re

from django.db import migrations

OPEN = ("open", "retrying")

_OLD_VOLATILE = re.compile(r"\b(?:[0-9a-f]{8}-[0-9a-f-]{27,}|[0-9a-f]{24,}|\d{6,}|\d+(?:\.\d+)?s)\b", re.I)
_NEW_VOLATILE = [
    re.compile(p, f)
    for p, f in (
        (r"(?<![\w-])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w-])", 0),
        (r"(?<![\w:])\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?![\w:])", 0),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        (r"\b[0-9a-f]{24,}\b", re.I),
        (r"\b[a-z]{2,8}_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{14,}\b", 0),
        (r"\b(?=[A-Za-z0-9]*\d[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])(?:[A-Za-z0-9]{18}|[A-Za-z0-9]{15})\b", 0),
        (r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds?|min|minutes?)\b", 0),
        (r"(?<![\w.-])[-+]?\d+(?:[.,]\d+)*(?![\w-])", 0),
        (r"\b\d{6,}\b", 0),
    )
]
_SPACES = re.compile(r"\s+")


def _sha(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


def _new_normal(text: str) -> str:
    for pattern in _NEW_VOLATILE:
        text = pattern.sub("#", text)
    return _SPACES.sub(" ", text).strip()[:500]


def _cause_text(exc) -> str:
    text = exc.message or ""
    for own in (exc.document_number, exc.account_name):
        if own:
            text = text.replace(own, "#")
    return text


def recompute(apps, schema_editor):
    SyncException = apps.get_model("sync", "SyncException")
    open_fingerprints = set(SyncException.objects.filter(status__in=OPEN).values_list("fingerprint", flat=True))
    changed = []
    fields = ("system", "error_class", "field", "message", "document_number", "account_name", "cause_key", "fingerprint", "status", "flow_run_id", "step_name")
    for exc in SyncException.objects.only(*fields).order_by("pk").iterator(chunk_size=2000):
        text = _cause_text(exc)
        old_cause = _sha(exc.system, exc.error_class, exc.field, _OLD_VOLATILE.sub("#", text).strip()[:500])
        new_cause = _sha(exc.system, exc.error_class, _new_normal(exc.field or ""), _new_normal(text))
        if old_cause != exc.cause_key or new_cause == exc.cause_key:
            continue  # not written by the old rule (message edited since, a fixture) or already right
        exc.cause_key = new_cause
        if exc.status in OPEN:
            run = str(exc.flow_run_id or "")
            if exc.fingerprint == _sha(run, exc.step_name, exc.error_class, old_cause, ""):
                fingerprint = _sha(run, exc.step_name, exc.error_class, new_cause, "")
                if fingerprint not in open_fingerprints:  # one open row per fingerprint
                    open_fingerprints.discard(exc.fingerprint)
                    open_fingerprints.add(fingerprint)
                    exc.fingerprint = fingerprint
        changed.append(exc)
        if len(changed) >= 2000:
            SyncException.objects.bulk_update(changed, ["cause_key", "fingerprint"])
            changed = []
    if changed:
        SyncException.objects.bulk_update(changed, ["cause_key", "fingerprint"])


class Migration(migrations.Migration):
    dependencies = [("sync", "0011_charge_types_and_payment_state")]

    operations = [migrations.RunPython(recompute, migrations.RunPython.noop)]
