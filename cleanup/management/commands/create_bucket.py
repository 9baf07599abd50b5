from django.core.management.base import CommandError

from cleanup.storage import get_storage
from cleanup.storage.probe import BucketNotCreated, create_bucket
from fmr.commands import StrictCommand


class Command(StrictCommand):
    help = "Create the configured S3 bucket, private, unless these credentials can already use it."

    def handle(self, *args, **options):
        try:
            done = create_bucket(get_storage())
        except BucketNotCreated as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] > 0:
            self.stdout.write(done[0].upper() + done[1:] + ".")
