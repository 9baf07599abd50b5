from django.utils import timezone

from fmr.commands import StrictCommand
from jobs.models import Job


class Command(StrictCommand):
    help = "List the jobs that exist, their expiry, and whether their files are in storage."

    def handle(self, *args, **options):
        now = timezone.now()
        jobs = Job.objects.with_expired_flag(now).order_by("expires_at").prefetch_related("files")
        self.stdout.write(f"{jobs.count()} job(s) at {timezone.localtime(now):%Y-%m-%d %H:%M %Z}")
        for job in jobs:
            files = list(job.files.all())
            stored = sum(1 for f in files if f.file.storage.exists(f.file.name))
            state = "EXPIRED" if job.is_expired else "live"
            self.stdout.write(
                f"  {job.pk}  expires {timezone.localtime(job.expires_at):%Y-%m-%d %H:%M}  "
                f"{state:<7}  files in storage: {stored}/{len(files)}"
            )
