"""Writing a run's snapshot: readers' records into ReconciliationRecord by COPY, in batches,
then the joins the comparison needs (done in SQL, so nothing is held in memory):
CRM ARR per deal from the order products of the order and its amendments, the deal of each
ERP invoice from the sales order it was created from, and the CRM account name on every record
of a deal."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from sync.models import ReconciliationRecord

from .readers import Record

TABLE = ReconciliationRecord._meta.db_table
FIELDS = (
    "role",
    "kind",
    "key",
    "deal_id",
    "ref",
    "parent_ref",
    "account_ref",
    "account_name",
    "currency",
    "amount",
    "arr",
    "paid",
    "status",
    "doc_date",
    "changed_at",
)
BATCH = 2000


def _copy(run_id: int, rows: list[Record]) -> None:
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {TABLE} (run_id, {', '.join(FIELDS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    (
                        run_id,
                        r.role,
                        r.kind,
                        r.key[:128],
                        r.deal_id[:64],
                        r.ref[:64],
                        r.parent_ref[:64],
                        r.account_ref[:64],
                        r.account_name[:255],
                        r.currency[:3],
                        r.amount,
                        r.arr,
                        r.paid,
                        r.status[:24],
                        r.doc_date,
                        r.changed_at,
                    )
                )


def write(run_id: int, records: Iterable[Record]) -> int:
    """Stream records into the snapshot, BATCH rows per COPY. Returns how many."""
    batch: list[Record] = []
    total = 0
    for record in records:
        batch.append(record)
        if len(batch) >= BATCH:
            _copy(run_id, batch)
            total += len(batch)
            batch = []
    if batch:
        _copy(run_id, batch)
        total += len(batch)
    return total


def derive(run_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")  # the snapshot was just written: plan the joins on what it holds
        # CRM: a contract's status on its orders, an amendment's deal (its contract's original order), the account's name
        cursor.execute(
            f"""UPDATE {TABLE} o SET status = c.status FROM {TABLE} c
                WHERE o.run_id = %s AND o.role = 'crm' AND o.kind IN ('order', 'change', 'renewal') AND o.parent_ref <> ''
                  AND c.run_id = o.run_id AND c.role = 'crm' AND c.kind = 'contract' AND c.key = o.parent_ref""",
            [run_id],
        )
        cursor.execute(
            f"""UPDATE {TABLE} ch SET deal_id = o.key FROM {TABLE} c, {TABLE} o
                WHERE ch.run_id = %s AND ch.role = 'crm' AND ch.kind IN ('change', 'renewal')
                  AND c.run_id = ch.run_id AND c.role = 'crm' AND c.kind = 'contract' AND c.key = ch.parent_ref
                  AND o.run_id = ch.run_id AND o.role = 'crm' AND o.ref = c.parent_ref AND o.kind = 'order'""",
            [run_id],
        )
        cursor.execute(
            f"""UPDATE {TABLE} o SET account_name = a.account_name FROM {TABLE} a
                WHERE o.run_id = %s AND o.role = 'crm' AND o.kind IN ('order', 'change', 'renewal')
                  AND a.run_id = o.run_id AND a.role = 'crm' AND a.kind = 'account' AND a.key = o.account_ref""",
            [run_id],
        )
        # CRM ARR of a deal: its order's products plus its amendments' (CPQ amendments carry deltas)
        cursor.execute(
            f"""UPDATE {TABLE} o SET arr = s.arr FROM (
                    SELECT d.deal_id, SUM(l.arr) AS arr FROM {TABLE} l
                    JOIN {TABLE} d ON d.run_id = l.run_id AND d.role = 'crm' AND d.kind IN ('order', 'change') AND d.ref = l.parent_ref
                    WHERE l.run_id = %s AND l.role = 'crm' AND l.kind = 'line' GROUP BY d.deal_id) s
                WHERE o.run_id = %s AND o.kind = 'order' AND o.key = s.deal_id AND o.role = 'crm'""",
            [run_id, run_id],
        )
        cursor.execute(f"UPDATE {TABLE} SET arr = 0 WHERE run_id = %s AND role = 'crm' AND kind = 'order' AND arr IS NULL", [run_id])
        # the deal of an ERP invoice: the sales order it was created from
        cursor.execute(
            f"""UPDATE {TABLE} i SET deal_id = so.deal_id FROM {TABLE} so
                WHERE i.run_id = %s AND i.role = 'erp' AND i.kind = 'invoice' AND i.deal_id = '' AND i.parent_ref <> ''
                  AND so.run_id = i.run_id AND so.role = 'erp' AND so.kind = 'order' AND so.ref = i.parent_ref""",
            [run_id],
        )
        # the customer's name as the CRM knows it, on every record of the deal
        cursor.execute(
            f"""UPDATE {TABLE} r SET account_name = c.account_name FROM {TABLE} c
                WHERE r.run_id = %s AND r.role <> 'crm' AND r.deal_id <> '' AND r.account_name = ''
                  AND c.run_id = r.run_id AND c.role = 'crm' AND c.kind = 'order' AND c.key = r.deal_id""",
            [run_id],
        )


def drop(run_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE run_id = %s", [run_id])


def drop_older(keep_run_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE run_id <> %s", [keep_run_id])


def counts(run_id: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT role, count(*) FROM {TABLE} WHERE run_id = %s GROUP BY role", [run_id])
        return dict(cursor.fetchall())
