import json
import re
from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from cleanup.models import PurgeRun
from cleanup.report import format_result
from cleanup.services import MAX_SIZE, PurgeNotPossible, purge_expired_jobs
from cleanup.storage import describe_error


def positive_int(value):
    # Plain ASCII digits only: int() would also take "1_0", "+5" or non-Latin digits.
    if not re.fullmatch(r"[0-9]+", value.strip()) or not 1 <= int(value) <= MAX_SIZE:
        raise ArgumentTypeError(
            f"expected a positive whole number up to {MAX_SIZE}, got {value!r}"
        )
    return int(value)


class Command(BaseCommand):
    help = "Delete jobs past their expiry with every row and file attached to them."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # A mistyped flag must be refused, not read as an abbreviation (--force is not
        # --force-color, --batch is not --batch-size).
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; change nothing."
        )
        parser.add_argument(
            "--batch-size", type=positive_int, default=None,
            help="Jobs deleted per transaction (default: the CLEANUP_BATCH_SIZE setting).",
        )
        parser.add_argument(
            "--limit", type=positive_int, default=None, help="Stop after this many jobs."
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, **options):
        try:
            result = purge_expired_jobs(
                batch_size=options["batch_size"],
                limit=options["limit"],
                dry_run=options["dry_run"],
                trigger=PurgeRun.Trigger.COMMAND,
            )
        except PurgeNotPossible as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"the purge failed on the database: {describe_error(exc)}. Batches committed "
                "before the failure stay purged, no job is half deleted; the next run continues."
            ) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] > 0:
            self.stdout.write(format_result(result))
        if not result.ok:
            raise CommandError(result.error or f"purge ended with status {result.status}")

