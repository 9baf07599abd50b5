"""Local file storage (FileSystemStorage under MEDIA_ROOT): one delete per name, failing alone
unless the file system itself fails. A job's directory goes with its last file."""

import errno
import os
import stat
from datetime import datetime, timezone

from . import names as canonical
from .outcome import DeleteOutcome, StoredObject, describe_error

# Errors of the file system as a whole: every other name would fail the same way.
_ERRNOS = "EROFS EIO ENODEV ENXIO ENOTCONN ESTALE ESHUTDOWN ETIMEDOUT ECONNREFUSED EHOSTDOWN"
STORAGE_ERRNOS = {
    getattr(errno, name) for name in f"{_ERRNOS} EHOSTUNREACH ENETDOWN ENETUNREACH".split()
}


class LocalSession:
    def __init__(self, storage, rule):
        self.storage = storage
        self.rule = rule  # the upload-name rule (cleanup.file_models.upload_rule())

    def delete_names(self, names) -> DeleteOutcome:
        outcome = DeleteOutcome()
        real = RealPaths(self.storage, self.rule.prefix)
        folders = set()  # of deleted files, emptied at the end: a job's files share one
        try:
            for index, name in enumerate(names):
                # FileSystemStorage follows symlinks: one could carry the delete outside.
                if real.leaves_upload_directory(name):
                    outcome.refused[name] = canonical.SYMLINK_OUT
                    continue
                outcome.requests += 1
                try:
                    self.storage.delete(name)  # a name already gone is no error
                except OSError as exc:
                    reason = _describe(exc)
                    if exc.errno in STORAGE_ERRNOS:
                        outcome.unavailable = reason
                        outcome.deferred.update(dict.fromkeys(names[index:], reason))
                        return outcome
                    outcome.failed[name] = reason
                except Exception as exc:  # noqa: BLE001 - any other error leaves this name pending
                    # Not the message: for a path outside MEDIA_ROOT it repeats the name.
                    outcome.failed[name] = f"{type(exc).__name__}: the name cannot be deleted here"
                else:
                    outcome.deleted.append(name)
                    folders.add(os.path.dirname(name))
        finally:
            _remove_empty_folders(self.storage, folders, self.rule.prefix)
        return outcome

    def list_objects(self, prefix):
        root, stack = self.storage.path(""), [self.storage.path(prefix)]
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
                        found = entry.stat(follow_symlinks=False)
                        yield StoredObject(
                            name=os.path.relpath(entry.path, root).replace(os.sep, "/"),
                            size=found.st_size,
                            modified=datetime.fromtimestamp(found.st_mtime, tz=timezone.utc),
                        )


def _describe(exc: OSError) -> str:
    # str(OSError) ends with the path, which holds the job id and the file name.
    if exc.errno is not None and exc.strerror:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return describe_error(exc)


def _remove_empty_folders(storage, folders, prefix):
    """Remove the folders deleted files left empty, deepest first, below the upload prefix (rmdir:
    only empty directories, never through a symlink)."""
    try:
        top = storage.path(prefix)
    except Exception:  # noqa: BLE001 - a storage without paths has no folders to tidy
        return
    for name in sorted(folders, key=len, reverse=True):
        try:
            folder = storage.path(name)
        except Exception:  # noqa: BLE001 - a folder that does not map to a path is not ours
            continue
        while folder.startswith(top + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break  # not empty (or not ours to remove): nothing above it is empty either
            folder = os.path.dirname(folder)


class RealPaths:
    """Whether a name's directories lead out of MEDIA_ROOT/<prefix>/ through a symlink (a file's
    own link is removed, not followed). One lstat per directory: realpath per name cost as much
    as the deletes."""

    def __init__(self, storage, prefix):
        self.root = os.path.abspath(storage.location)
        self.inside = os.path.join(os.path.realpath(self.root), prefix)
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
