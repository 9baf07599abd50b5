"""Local file storage (FileSystemStorage under MEDIA_ROOT): one delete per name, failing alone
unless the file system itself fails."""

import errno
import os
import stat
from datetime import datetime, timezone
from functools import cache

from . import names as canonical
from .outcome import DeleteOutcome, StoredObject

# Errors of the file system as a whole: every other name would fail the same way.
_ERRNOS = "EROFS EIO ENODEV ENXIO ENOTCONN ESTALE ESHUTDOWN ETIMEDOUT ECONNREFUSED EHOSTDOWN"
STORAGE_ERRNOS = {getattr(errno, n) for n in f"{_ERRNOS} EHOSTUNREACH ENETDOWN ENETUNREACH".split()}


class LocalSession:
    def __init__(self, storage, rule):
        self.storage = storage
        self.rule = rule  # the upload-name rule (cleanup.file_models.upload_rule())

    def delete_names(self, names) -> DeleteOutcome:
        outcome = DeleteOutcome()
        leads_out = _symlinked_out(self.storage, self.rule.prefix)
        folders = set()  # of deleted files, emptied at the end: a job's files share one
        try:
            for index, name in enumerate(names):
                # FileSystemStorage follows symlinks: one could carry the delete outside.
                if leads_out(name.rpartition("/")[0]):
                    outcome.refused[name] = canonical.SYMLINK_OUT
                    continue
                outcome.requests += 1
                try:
                    self.storage.delete(name)  # a name already gone is no error
                except Exception as exc:  # noqa: BLE001 - any error leaves this name pending
                    # Not str(exc): it holds the path or the name (the job id, the file name).
                    reason = f"{type(exc).__name__}: the name cannot be deleted here"
                    if getattr(exc, "strerror", None):
                        reason = f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
                    if getattr(exc, "errno", None) in STORAGE_ERRNOS:
                        outcome.unavailable = reason
                        outcome.deferred.update(dict.fromkeys(names[index:], reason))
                        return outcome
                    outcome.failed[name] = reason
                else:
                    outcome.deleted.append(name)
                    folders.add(os.path.dirname(name))
        finally:
            _remove_empty_folders(self.storage, folders, self.rule.prefix)
        return outcome

    def list_objects(self, prefix):
        root = self.storage.path("")
        for folder, _, files in os.walk(self.storage.path(prefix), onerror=_unless_gone):
            for file in files:
                path = os.path.join(folder, file)
                found = os.lstat(path)
                if stat.S_ISREG(found.st_mode):  # not a symlink: walk follows none
                    name = os.path.relpath(path, root).replace(os.sep, "/")
                    modified = datetime.fromtimestamp(found.st_mtime, tz=timezone.utc)
                    yield StoredObject(name, found.st_size, modified)


def _unless_gone(exc: OSError):
    if not isinstance(exc, FileNotFoundError):
        raise exc


def _remove_empty_folders(storage, folders, prefix):
    """A job's directory goes with its last file (rmdir: only empty ones, never through a link)."""
    top = storage.path(prefix)
    for folder in sorted(map(storage.path, folders), key=len, reverse=True):
        while folder.startswith(top + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break  # not empty (or not ours to remove): nothing above it is empty either
            folder = os.path.dirname(folder)


def _symlinked_out(storage, prefix):
    """Whether a directory leads out of MEDIA_ROOT/<prefix>/ through a symlink (a file's own link
    is removed, not followed), one lstat each: realpath per name cost as much as the deletes."""
    root = os.path.abspath(storage.location)
    inside = os.path.join(os.path.realpath(root), prefix)

    @cache
    def leads_out(directory: str) -> bool:
        if not directory:
            return False
        if leads_out(directory.rpartition("/")[0]):
            return True
        path = os.path.join(root, directory)
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return False  # nothing there to follow (the delete finds nothing either)
        target = os.path.realpath(path)
        return target != inside and not target.startswith(inside + os.sep)

    return leads_out
