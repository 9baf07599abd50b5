import csv
import json

from django.core.management.base import CommandError

from cleanup.services import ledger_models, purge_log
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_day

CSV_COLUMNS = [
    "run_id",
    "group",
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


class Command(StrictCommand):
    help = (
        "The destruction ledger: one line per purge run started from --since to --until, both "
        "days included, in Asia/Seoul time (the project's TIME_ZONE): when, trigger, who asked "
        "(admin runs), rows deleted per model, files deleted and pending, status and method. "
        "Counts only, no personal data. Every run is one line; the runs of one purge (a fan-out) "
        "share a group."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            type=argument_type(parse_day),
            required=True,
            metavar="YYYY-MM-DD",
            help="First day (from 00:00 Asia/Seoul), included.",
        )
        parser.add_argument(
            "--until",
            type=argument_type(parse_day),
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
        # Django's stdout ends each write() with a newline: one row, one line.
        writer = csv.writer(self.stdout, lineterminator="")
        writer.writerow([*head, *models, *tail])
        for entry in entries:
            data = entry.as_dict()
            rows = data["rows_deleted"]
            writer.writerow(
                [*(data[c] for c in head), *(rows[m] for m in models), *(data[c] for c in tail)]
            )
