import json

from django.core.management.base import CommandError

from cleanup.services import lifecycle
from fmr.commands import StrictCommand


class Command(StrictCommand):
    help = (
        "The lifecycle backstop: S3 deletes the jobs' files itself JOB_TTL + 1 day after upload if "
        f"the purge does not run (rules {lifecycle.BACKSTOP_RULE_ID}, {lifecycle.MARKERS_RULE_ID}; "
        "merged into the bucket's others). Prints the configuration; writes it only with --apply."
    )

    def add_arguments(self, parser):
        flags = parser.add_mutually_exclusive_group()
        flags.add_argument("--apply", action="store_true", help="Write the merged configuration.")
        flags.add_argument(
            "--dry-run", action="store_true", help="Print it without writing (the default)."
        )

    def handle(self, *args, **options):
        try:
            plan = lifecycle.plan_lifecycle(apply=options["apply"])
        except lifecycle.LifecycleFailed as exc:
            raise CommandError(f"lifecycle configuration not changed: {exc}") from None
        if plan is None:
            self.stdout.write("Files are on local storage (MEDIA_ROOT): no lifecycle to set.")
            return
        config = {"Bucket": plan.bucket, "Rules": plan.rules}
        self.stdout.write(json.dumps(config, indent=2, default=str))
        where = f"bucket '{plan.bucket}', prefix '{plan.prefix}'"
        if plan.backstop:
            self.stdout.write(f"The backstop is already in place on {where}: nothing changed.")
        elif options["apply"]:
            self.stdout.write(f"Wrote the backstop rules to {where}.")
        else:
            self.stdout.write(f"Not written (dry run): --apply writes it to {where}.")
