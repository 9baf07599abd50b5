from django.core.management.base import CommandError

from cleanup.report import format_reach, format_status, show
from cleanup.services import PurgeNotPossible, purge_status
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_minutes


class Command(StrictCommand):
    help = (
        "Is the 24-hour promise holding? Expired jobs still present, pending file deletions, "
        "the last successful purge, whether storage can be reached. Exits non-zero when storage "
        "cannot be reached, and with --max-overdue when the promise is at risk."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the facts as JSON.")
        parser.add_argument(
            "--max-overdue",
            type=argument_type(parse_minutes),
            metavar="MINUTES",
            help="Exit 1 when an expired job is still present this long after its expiry, "
            "or a file deletion has been pending this long.",
        )

    def handle(self, *args, **options):
        try:
            status = purge_status(reach_storage=True)
        except PurgeNotPossible as exc:  # a storage backend that is not supported at all
            raise CommandError(str(exc)) from exc
        limit, storage = options["max_overdue"], status.storage
        problems = [] if limit is None else status.problems(max_overdue=limit)
        if not storage["reachable"]:
            problems.insert(0, f"storage cannot be reached: {format_reach(storage)}")
        extra = {} if limit is None else {"problems": problems}
        show(self, options, status.as_dict() | extra, format_status(status))
        if problems:
            raise CommandError("the 24-hour promise is at risk: " + "; ".join(problems))
