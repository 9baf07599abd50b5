import json
import math
from argparse import ArgumentTypeError
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from cleanup.report import format_reconcile
from cleanup.services import RECONCILE_GRACE, reconcile_storage


def minutes(value):
    problem = f"expected a number of minutes (0 or more), got {value!r}"
    try:
        number = float(value)
    except ValueError:
        raise ArgumentTypeError(problem) from None
    if not math.isfinite(number) or number < 0:
        raise ArgumentTypeError(problem)
    return timedelta(minutes=number)


class Command(BaseCommand):
    help = (
        "Find objects under the jobs' upload prefix that no row and no pending deletion names "
        "(orphans), older than the grace period; with --delete, delete them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--delete", action="store_true", help="Delete the orphans (default: only report)."
        )
        parser.add_argument(
            "--grace",
            type=minutes,
            default=RECONCILE_GRACE,
            metavar="MINUTES",
            help="Leave objects younger than this alone, so uploads in flight are safe "
            f"(default: {RECONCILE_GRACE.total_seconds() / 60:.0f}).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, **options):
        result = reconcile_storage(delete=options["delete"], grace=options["grace"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif options["verbosity"] > 0:
            self.stdout.write(format_reconcile(result, examples=options["verbosity"] > 1))
        if not result.ok:
            raise CommandError(result.error)
