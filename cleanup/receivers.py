"""Signal wiring that makes every deleted FileField's file a durable pending deletion.

The post_delete receiver runs inside the transaction that deletes the row, so the pending name
commits or rolls back with it. Deleting from storage happens only after commit.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models.signals import post_delete

# While the purge deletes a batch, names are gathered here and written in one INSERT.
_batch_names: ContextVar[list[str] | None] = ContextVar("cleanup_batch_names", default=None)


def file_fields(model) -> list[models.FileField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, models.FileField)]


def models_with_files():
    return [model for model in apps.get_models() if file_fields(model)]


def connect_file_receivers():
    for model in models_with_files():
        for f in file_fields(model):
            # Pending names carry no storage alias: they are deleted from the default storage.
            if f.storage is not default_storage:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{f.name} uses its own storage; the purge only "
                    "deletes files from the default storage"
                )
        post_delete.connect(
            record_deleted_files,
            sender=model,
            weak=False,
            dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}",
        )


def disconnect_file_receivers():
    for model in models_with_files():
        post_delete.disconnect(
            sender=model, dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}"
        )


def names_of(instance) -> list[str]:
    names = (getattr(instance, f.attname).name for f in file_fields(type(instance)))
    return [name for name in names if name]


def record_deleted_files(sender, instance, using, **kwargs):
    names = names_of(instance)
    if not names:
        return
    batch = _batch_names.get()
    if batch is not None:
        batch.extend(names)
        return
    from .models import PendingFileDeletion
    from .services import delete_pending_files

    # A delete from admin or a shell: record now, in the deleting transaction, and clear storage
    # once that transaction commits. If the storage delete fails the name stays pending.
    PendingFileDeletion.objects.using(using).record(names)
    transaction.on_commit(partial(delete_pending_files, names=names), using=using, robust=True)


@contextmanager
def gathering_deleted_files():
    """Collect the file names of rows deleted inside the block instead of inserting each one.

    The caller must record the yielded names in the same transaction as the delete.
    """
    names: list[str] = []
    token = _batch_names.set(names)
    try:
        yield names
    finally:
        _batch_names.reset(token)
