import json

from django.core.management.base import CommandError

from cleanup.services import lifecycle
from fmr.commands import StrictCommand


class Command(StrictCommand):
    help = (
        "The backstop: S3 lifecycle rules that delete the jobs' files JOB_TTL + 1 day after upload "
        "if the purge does not run, merged into the bucket's. Written only with --apply."
    )

    def add_arguments(self, parser):
        flags = parser.add_mutually_exclusive_group()
        flags.add_argument("--apply", action="store_true", help="Write the merged configuration.")
        flags.add_argument("--dry-run", action="store_true", help="Only print it (the default).")

    def handle(self, *args, apply, **options):
        try:
            plan = lifecycle.plan_lifecycle(apply=apply)
        except lifecycle.LifecycleFailed as exc:
            raise CommandError(f"lifecycle configuration not changed: {exc}") from None
        if plan is None:
            return "Files are on local storage (MEDIA_ROOT): no lifecycle to set."
        where = f"bucket '{plan.bucket}', prefix '{plan.prefix}'"
        if plan.backstop:
            done = f"The backstop is already in place on {where}: nothing changed."
        elif apply:
            done = f"Wrote the backstop rules to {where}."
        else:
            done = f"Not written (dry run): --apply writes it to {where}."
        config = json.dumps({"Bucket": plan.bucket, "Rules": plan.rules}, indent=2, default=str)
        return f"{config}\n{done}"
