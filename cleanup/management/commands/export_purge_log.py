import csv
import json
import re
from argparse import ArgumentTypeError
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from cleanup.services import ledger_models, purge_log

CSV_COLUMNS = [
    "run_id",
    "parent_run_id",
    "started_at",
    "finished_at",
    "trigger",
    "requested_by",
    "status",
    "dry_run",
    # then one column per model (rows deleted), then:
    "rows_total",
    "files_deleted",
    "files_pending",
    "method",
]


def day(value):
    # Exactly YYYY-MM-DD: date.fromisoformat would also take 20261101 or 2026-W48-1.
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a calendar date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "The destruction ledger: one line per purge run started from --since to --until, both "
        "days included, in Asia/Seoul time (the project's TIME_ZONE): when, trigger, who asked "
        "(admin runs), rows deleted per model, files deleted and pending, status and method. "
        "Counts only, no personal data. A fan-out is its own line (the totals) plus one line "
        "per subtask run (parent_run_id): add up lines without subtasks to avoid counting twice."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # A mistyped flag is refused, never read as an abbreviation of another.
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            type=day,
            required=True,
            metavar="YYYY-MM-DD",
            help="First day (from 00:00 Asia/Seoul), included.",
        )
        parser.add_argument(
            "--until",
            type=day,
            required=True,
            metavar="YYYY-MM-DD",
            help="Last day (to 24:00 Asia/Seoul), included: --since D --until D is one day.",
        )
        parser.add_argument(
            "--format",
            choices=["csv", "json"],
            default="csv",
            help="csv (a header line, then one line per run; default) or json (one JSON "
            "object per line, JSON Lines).",
        )

    def handle(self, *args, **options):
        try:
            entries = purge_log(since=options["since"], until=options["until"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["format"] == "json":
            for entry in entries:
                self.stdout.write(json.dumps(entry.as_dict(), ensure_ascii=False))
            return
        models = ledger_models()
        head, tail = CSV_COLUMNS[:8], CSV_COLUMNS[8:]
        writer = csv.writer(_Lines(self.stdout), lineterminator="")
        writer.writerow([*head, *models, *tail])
        for entry in entries:
            data = entry.as_dict()
            rows = data["rows_deleted"]
            writer.writerow(
                [*(data[c] for c in head), *(rows[m] for m in models), *(data[c] for c in tail)]
            )


class _Lines:
    """csv.writer's file: each row goes out as one line through the command's stdout."""

    def __init__(self, out):
        self.out = out

    def write(self, text):
        self.out.write(text)
