"""Report any two attempts of one flow step that were running at the same time (exit status 1 if any)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sync.engine.attempts import double_runs


class Command(BaseCommand):
    help = "Report steps that ran twice at once (overlapping attempts in the step-attempt log)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=None, help="only attempts started in the last N hours (default: all)")

    def handle(self, *args, hours=None, **options):
        since = timezone.now() - timedelta(hours=hours) if hours else None
        found = double_runs(since=since)
        for pair in found:
            a, b = pair["first"], pair["second"]
            self.stdout.write(
                f"flow {pair['flow_run_id']} step {pair['step']} (#{pair['step_id']}): attempt {a['number']} on {a['worker']} "
                f"{a['started_at']:%H:%M:%S.%f}–{a['finished_at'] or 'still running'} overlaps attempt {b['number']} on {b['worker']} "
                f"{b['started_at']:%H:%M:%S.%f}–{b['finished_at'] or 'still running'}"
            )
        self.stdout.write(f"{len(found)} double runs")
        if found:
            raise CommandError(f"{len(found)} double runs: a step ran twice at once")
