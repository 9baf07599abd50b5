import random
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs.demo import create_full_job


class Command(BaseCommand):
    help = "Create demo jobs with real files: some already past expiry, some live."

    def add_arguments(self, parser):
        parser.add_argument("--expired", type=int, default=3)
        parser.add_argument("--live", type=int, default=2)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, expired, live, seed, **options):
        if expired < 0 or live < 0:
            raise CommandError("--expired and --live must be zero or more")
        rng = random.Random(seed)
        now = timezone.now()
        ttl = settings.JOB_TTL
        for i in range(expired):
            create_full_job(created_at=now - ttl - timedelta(minutes=10 * (i + 1)), rng=rng)
        for i in range(live):
            create_full_job(created_at=now - ttl + timedelta(hours=i + 1), rng=rng)
        self.stdout.write(f"Created {expired} expired and {live} live demo job(s).")
