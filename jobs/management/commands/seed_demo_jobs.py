import random
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management.base import CommandError
from django.utils import timezone

from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_int
from jobs.demo import create_full_job

count = argument_type(parse_int, minimum=0, maximum=100_000)


class Command(StrictCommand):
    help = "Create demo jobs with real files: some already past expiry, some live."

    def add_arguments(self, parser):
        parser.add_argument("--expired", type=count, default=3)
        parser.add_argument("--live", type=count, default=2)
        parser.add_argument("--seed", type=argument_type(parse_int, minimum=0), default=None)

    def handle(self, *args, expired, live, seed, **options):
        rng = random.Random(seed)
        born = timezone.now() - settings.JOB_TTL
        created_at = [born - timedelta(minutes=10 * (i + 1)) for i in range(expired)]
        created_at += [born + timedelta(hours=i + 1) for i in range(live)]
        for done, moment in enumerate(created_at):
            try:
                create_full_job(created_at=moment, rng=rng)
            except (ImproperlyConfigured, ClientError, BotoCoreError, OSError) as exc:
                # Each job is saved in one transaction: the failed one left no row.
                created = f"{done} of {len(created_at)} job(s) created."
                raise CommandError(f"{storage_problem(exc)} {created}") from None
        return f"Created {expired} expired and {live} live demo job(s)."


def storage_problem(exc) -> str:
    if isinstance(exc, ImproperlyConfigured):
        return str(exc)  # not the storage this database's files live in: the message names both
    # Codes and types only: botocore's messages and OSError's filename carry the key (a job id).
    reason = ": ".join(filter(None, [type(exc).__name__, getattr(exc, "strerror", None)]))
    if isinstance(exc, ClientError):
        reason = f"{exc.response.get('Error', {}).get('Code', 'Error')} ({exc.operation_name})"
    if bucket := getattr(default_storage, "bucket_name", None):
        where = f"bucket '{bucket}' at {default_storage.endpoint_url or 'AWS S3'}"
    else:
        where = f"local storage at {settings.MEDIA_ROOT}"
    return (
        f"could not store a demo file in {where}: {reason}. Create the bucket first (README, "
        "'Running it in production') or fix the storage settings; `python manage.py check` tests "
        "the storage."
    )
