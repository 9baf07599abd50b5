"""Django's `check`, plus the cleanup checks that reach storage and the database.

The command is Django's own, unchanged; it only turns on the cleanup checks (cleanup/checks.py)
while it runs, so a person asking for checks gets them, and the implicit checks of every other
command (and of a starting Celery worker) do not wait on S3.
"""

from django.core.management.commands.check import Command as DjangoCheck

from cleanup.checks import reaching_services


class Command(DjangoCheck):
    help = (
        f"{DjangoCheck.help} Also whether the storage bucket exists and answers (credentials, "
        "endpoint, versioning) and whether the beat schedule rows of the purge and the "
        "reconciler exist and are enabled (the 'cleanup' tag)."
    )

    def handle(self, *app_labels, **options):
        with reaching_services():
            return super().handle(*app_labels, **options)
