"""What the services raise when a run cannot start: nothing was read from storage or deleted."""

from django.core.exceptions import ImproperlyConfigured


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


class StorageNotVerified(PurgeNotPossible, ImproperlyConfigured):
    """The configured storage is not the one the database's files live in, or cannot be
    verified to be; nothing was deleted. The message names both storages and the way forward.

    Also an ImproperlyConfigured: it is this process's storage settings that are wrong (or the
    files moved), so code that knows nothing of the purge (the jobs app's demo seeding) can tell
    an operator so without importing cleanup."""
