from django.core.management.base import CommandError

from cleanup.models import PurgeRun
from cleanup.report import format_reconcile, show
from cleanup.services import RECONCILE_GRACE, reconcile_storage
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import MAX_MINUTES, parse_minutes


class Command(StrictCommand):
    help = (
        "Report objects under the jobs' upload prefix, older than --grace, that no row and no "
        "pending deletion names (orphans); --delete deletes them. Refuses when the database holds "
        "no job or over CLEANUP_RECONCILE_MAX_ORPHAN_SHARE of the objects look orphaned: --force "
        "overrides that, only after a person has checked the database and the storage."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="Delete the orphans.")
        parser.add_argument(
            "--grace",
            type=argument_type(
                parse_minutes, expected=f"a number of minutes (0 or more) up to {MAX_MINUTES}"
            ),
            default=RECONCILE_GRACE,
            metavar="MINUTES",
            help="Leave younger objects alone, so uploads in flight are safe (default: "
            f"{RECONCILE_GRACE.total_seconds() / 60:.0f}).",
        )
        parser.add_argument("--force", action="store_true", help="Delete despite the refusal.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, delete, grace, force, **options):
        trigger = PurgeRun.Trigger.COMMAND
        result = reconcile_storage(delete=delete, grace=grace, force=force, trigger=trigger)
        text = format_reconcile(result, examples=options["verbosity"] > 1)
        show(self, options, result.as_dict(), text)
        if not result.ok:
            raise CommandError(result.error)
