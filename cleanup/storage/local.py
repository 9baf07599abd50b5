"""Local file storage (FileSystemStorage under MEDIA_ROOT): one delete per name."""

import os
from datetime import UTC, datetime

from . import names as canonical
from .outcome import DeleteOutcome, StoredObject, describe_error


def delete_names(storage, names) -> DeleteOutcome:
    outcome = DeleteOutcome()
    for name in names:
        # FileSystemStorage follows symlinks: a symlinked directory (or file) inside MEDIA_ROOT
        # would carry the delete to whatever it points at.
        if canonical.leaves_media_root(storage, name):
            outcome.refused[name] = canonical.SYMLINK_OUT
            continue
        outcome.requests += 1
        try:
            storage.delete(name)  # FileSystemStorage ignores names that are already gone.
        except Exception as exc:  # noqa: BLE001 - any storage error leaves the name pending
            outcome.failed[name] = describe_error(exc)
        else:
            outcome.deleted.append(name)
    if outcome.failed and not outcome.deleted:
        outcome.unavailable = next(iter(outcome.failed.values()))
    return outcome


def list_objects(storage, prefix):
    root = storage.path("")
    stack = [storage.path(prefix)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield StoredObject(
                        name=os.path.relpath(entry.path, root).replace(os.sep, "/"),
                        size=stat.st_size,
                        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                    )
