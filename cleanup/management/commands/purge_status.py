from django.core.management.base import CommandError

from cleanup.report import format_reach, format_status, show
from cleanup.services import PurgeNotPossible, purge_status
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_minutes


class Command(StrictCommand):
    help = (
        "Is the 24-hour promise holding? Exits 1 when storage cannot be reached, and with "
        "--max-overdue MINUTES when an expired job or a pending file deletion is that overdue."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the facts as JSON.")
        parser.add_argument("--max-overdue", type=argument_type(parse_minutes), metavar="MINUTES")

    def handle(self, *args, max_overdue, **options):
        try:
            status = purge_status(reach_storage=True)
        except PurgeNotPossible as exc:  # a storage backend that is not supported at all
            raise CommandError(str(exc)) from exc
        problems = [] if max_overdue is None else status.problems(max_overdue=max_overdue)
        if not status.storage["reachable"]:
            problems.insert(0, f"storage cannot be reached: {format_reach(status.storage)}")
        extra = {} if max_overdue is None else {"problems": problems}
        show(self, options, status.as_dict() | extra, format_status(status))
        if problems:
            raise CommandError("the 24-hour promise is at risk: " + "; ".join(problems))
