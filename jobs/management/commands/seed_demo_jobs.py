import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_int
from jobs.demo import create_full_job

count = argument_type(parse_int, minimum=0, maximum=100_000)
seed_number = argument_type(parse_int, minimum=0)


class Command(StrictCommand):
    help = "Create demo jobs with real files: some already past expiry, some live."

    def add_arguments(self, parser):
        parser.add_argument("--expired", type=count, default=3)
        parser.add_argument("--live", type=count, default=2)
        parser.add_argument("--seed", type=seed_number, default=None)

    def handle(self, *args, expired, live, seed, **options):
        rng = random.Random(seed)
        now = timezone.now()
        ttl = settings.JOB_TTL
        for i in range(expired):
            create_full_job(created_at=now - ttl - timedelta(minutes=10 * (i + 1)), rng=rng)
        for i in range(live):
            create_full_job(created_at=now - ttl + timedelta(hours=i + 1), rng=rng)
        self.stdout.write(f"Created {expired} expired and {live} live demo job(s).")
