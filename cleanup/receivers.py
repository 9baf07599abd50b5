"""Signal wiring that makes the files of rows deleted outside the purge durable pending deletions.

A delete from the admin or a shell sends post_delete inside the transaction that deletes the row,
so the pending name commits or rolls back with it; deleting from storage happens only after
commit. The purge records its own batches' names from its collector in one INSERT (see
cleanup/deletion.py), and marks its deletes so these receivers leave them alone.
"""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete

from .deletion import records_its_own_files
from .file_models import file_models, names_of, validate_file_models
from .models import PendingFileDeletion
from .services import delete_pending_files


def connect_file_receivers():
    validate_file_models()
    for model in file_models():
        post_delete.connect(
            record_deleted_files,
            sender=model,
            weak=False,
            dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}",
        )


def record_deleted_files(sender, instance, using, origin=None, **kwargs):
    if records_its_own_files(origin):
        return
    names = names_of(instance)
    if not names:
        return
    # Record now, in the deleting transaction, and clear storage once that transaction commits.
    # If the storage delete fails the name stays pending for the next purge.
    PendingFileDeletion.objects.using(using).record(names)
    transaction.on_commit(partial(delete_pending_files, names=names), using=using, robust=True)
