import json

from django.core.management.base import CommandError

from cleanup.report import format_status
from cleanup.services import purge_status
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_minutes

minutes = argument_type(parse_minutes)


class Command(StrictCommand):
    help = (
        "Is the 24-hour promise holding? Expired jobs still present, pending file deletions, "
        "the last successful purge. With --max-overdue, exits non-zero when it is at risk."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the facts as JSON.")
        parser.add_argument(
            "--max-overdue",
            type=minutes,
            default=None,
            metavar="MINUTES",
            help="Exit 1 when an expired job is still present this long after its expiry, "
            "or a file deletion has been pending this long.",
        )

    def handle(self, *args, **options):
        status = purge_status()
        limit = options["max_overdue"]
        problems = [] if limit is None else status.problems(max_overdue=limit)
        if options["json"]:
            data = status.as_dict()
            if limit is not None:
                data["problems"] = problems
            self.stdout.write(json.dumps(data, indent=2))
        elif options["verbosity"] > 0:
            self.stdout.write(format_status(status))
        if problems:
            raise CommandError("the 24-hour promise is at risk: " + "; ".join(problems))
