"""The declared file models' signals (the purge's plan sends none): post_delete records names in
the deleting transaction, deleted after commit; pre_save binds the storage on the first file."""

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
    receivers = {post_delete: record_deleted_files, pre_save: bind_storage_of_saved_files}
    for model in file_models():
        for signal, receiver in receivers.items():
            uid = f"cleanup.{receiver.__name__}.{model._meta.label}"
            connect_own_receiver(signal, receiver, sender=model, dispatch_uid=uid)


def bind_storage_of_saved_files(sender, instance, raw=False, using=None, **kwargs):
    # Not for loaddata (raw): files written elsewhere (a purge asks for `bind_storage --rebind`).
    if not raw and names_of(instance):
        ensure_storage_bound(by="first file written")


def record_deleted_files(sender, instance, using, **kwargs):
    if names := names_of(instance):
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
