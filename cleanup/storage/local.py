"""Local file storage (FileSystemStorage under MEDIA_ROOT): one delete per name."""

import os
import stat
from datetime import UTC, datetime

from jobs.models import UPLOAD_PREFIX

from . import names as canonical
from .outcome import DeleteOutcome, StoredObject, describe_error


def delete_names(storage, names) -> DeleteOutcome:
    outcome = DeleteOutcome()
    real = RealPaths(storage)
    for name in names:
        # FileSystemStorage follows symlinks: a symlinked directory (or file) inside MEDIA_ROOT
        # would carry the delete to whatever it points at.
        if real.leaves_upload_directory(name):
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


class RealPaths:
    """Whether a name's directories lead out of MEDIA_ROOT/jobs/ through a symlink.

    Only directories matter: the delete resolves every directory of the path, following
    symlinks, but removes the last component itself (a symlinked file loses the link, never its
    target; a symlink to a directory is not removed at all). Each directory is looked at once per
    delete call, one lstat, resolved only when it is a symlink: a batch's names share their
    directories, and os.path.realpath on every name (an lstat per component from /) cost the
    purge as much as the deletes themselves.
    """

    def __init__(self, storage):
        self.root = os.path.abspath(storage.location)
        self.inside = os.path.join(os.path.realpath(self.root), UPLOAD_PREFIX)
        self.directories: dict[str, bool] = {}

    def leaves_upload_directory(self, name: str) -> bool:
        directory = name.rpartition("/")[0]
        if directory not in self.directories:
            parent = directory.rpartition("/")[0]
            self.directories[directory] = bool(directory) and (
                (bool(parent) and self.leaves_upload_directory(directory))
                or self._leads_out(os.path.join(self.root, directory))
            )
        return self.directories[directory]

    def _leads_out(self, path) -> bool:
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return False  # nothing there to follow (the delete finds nothing either)
        target = os.path.realpath(path)
        return target != self.inside and not target.startswith(self.inside + os.sep)


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
