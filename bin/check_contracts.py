#!/usr/bin/env python3
"""Fails when a published event contract changed incompatibly (docs/CONTRACTS.md).

Compares every schema in sync/canonical/schemas/ with the lock, sync/canonical/contracts.lock.json
(a normalized copy of each published version), by the rules in sync/canonical/compat.py, and
checks the statuses in sync/canonical/lifecycle.py (one current version per event type, its
highest; older ones deprecated with a sunset).

    python bin/check_contracts.py            # CI (bin/test's lint block): exit 1 on any difference
    python bin/check_contracts.py --update   # publish new versions and compatible changes into the lock;
                                             # refuses (exit 1, lock untouched) when a change is breaking

Plain Python: no Django, no database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.canonical import compat  # noqa: E402
from sync.canonical.lifecycle import lifecycle_problems  # noqa: E402

SCHEMA_DIR = ROOT / "sync" / "canonical" / "schemas"
LOCK = ROOT / "sync" / "canonical" / "contracts.lock.json"
UPDATE = "python bin/check_contracts.py --update"


def load_files(schema_dir: Path = SCHEMA_DIR) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(schema_dir.glob("*.json"))}


def load_lock(lock: Path = LOCK) -> dict[str, dict]:
    if not lock.exists():
        return {}
    return json.loads(lock.read_text())["contracts"]


def write_lock(files: dict[str, dict], lock: Path = LOCK) -> None:
    lock.write_text(json.dumps(compat.lock_of(files), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def run(update: bool = False, schema_dir: Path = SCHEMA_DIR, lock: Path = LOCK, out=sys.stdout) -> int:
    files = load_files(schema_dir)
    report = compat.check(files, load_lock(lock))
    lifecycle = lifecycle_problems(name for name in files if name != "envelope")
    say = lambda line: print(f"[contracts] {line}", file=out)  # noqa: E731

    for name, change in report.breaking:
        say(f"BREAKING {name}: {change.path}: {change.message} ({change.kind})")
    for name in report.removed:
        say(f"BREAKING {name}: a published version's schema file is gone (keep it; deprecate it with a sunset instead)")
    for name, change in report.compatible:
        say(f"compatible {name}: {change.path}: {change.message} ({change.kind})")
    for name in report.unpublished:
        say(f"new {name}: not in the lock yet")
    for problem in lifecycle:
        say(f"STATUS {problem}")

    if report.breaking or report.removed:
        say(
            "a published version changed incompatibly: revert it and publish the change as a new version "
            "(<type>.v<N+1>.json + an upcaster + a status; docs/CONTRACTS.md)"
        )
    if lifecycle:
        say("fix the statuses in sync/canonical/lifecycle.py")
    if report.breaking or report.removed or lifecycle:
        return 1
    if report.clean:
        say(f"{len(files)} contracts match the lock ({LOCK.relative_to(ROOT) if lock == LOCK else lock})")
        return 0
    if update:
        write_lock(files, lock)
        say(f"lock updated: {len(report.unpublished)} new, {len(report.compatible)} compatible change(s) — commit {lock.name} with the schemas")
        return 0
    say(f"only compatible changes and new versions: publish them with `{UPDATE}` and commit the lock")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="write new versions and compatible changes into the lock")
    return run(update=parser.parse_args(argv).update)


if __name__ == "__main__":
    sys.exit(main())
