"""Signal wiring for the declared file models: binding their storage, and making the files of
rows deleted outside the purge durable pending deletions.

A delete from the admin or a shell sends post_delete inside the transaction that deletes the row,
so the pending name commits or rolls back with it; deleting from storage happens only after
commit, and only if the configured storage is the one the database's files live in (otherwise
the names stay pending). The purge's delete plan sends no signals: it records its batches' names
itself, from its DELETE … RETURNING (see cleanup/deletion.py).

Before a file row is saved, the storage it is written to is bound to the database if nothing is
bound yet (the first file), and a save into another storage than the bound one is refused.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_delete, pre_save

from .deletion import connect_own_receiver
from .file_models import file_models, names_of, validate_file_models
from .models import PendingFileDeletion
from .services import StorageNotVerified, delete_pending_files, ensure_storage_bound

logger = logging.getLogger(__name__)


def connect_file_receivers():
    validate_file_models()
    for model in file_models():
        connect_own_receiver(
            post_delete,
            record_deleted_files,
            sender=model,
            dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}",
        )
        pre_save.connect(
            bind_storage_of_saved_files,
            sender=model,
            weak=False,
            dispatch_uid=f"cleanup.bind_storage_of_saved_files.{model._meta.label}",
        )


def bind_storage_of_saved_files(sender, instance, raw=False, using=None, **kwargs):
    # Not for loaddata (raw): those rows' files were written elsewhere, by someone else; a purge
    # then asks for an explicit `bind_storage --rebind` instead of assuming.
    if not raw and names_of(instance):
        ensure_storage_bound(by="first file written")


def record_deleted_files(sender, instance, using, **kwargs):
    names = names_of(instance)
    if not names:
        return
    # Record now, in the deleting transaction, and clear storage once that transaction commits.
    # If the storage delete fails the name stays pending for the next purge.
    recorded_as = PendingFileDeletion.objects.using(using).record(names)
    transaction.on_commit(
        lambda: _delete_after_commit(names, recorded_as), using=using, robust=True
    )


def _delete_after_commit(names, recorded_as):
    try:
        delete_pending_files(names=names, recorded_as=recorded_as)
    except StorageNotVerified as exc:
        # The names stay pending; a purge on the right storage deletes them.
        logger.warning("files.not_deleted", extra={"files": len(names), "reason": str(exc)})
