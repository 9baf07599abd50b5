"""What the services raise when a run cannot start: nothing was read from storage or deleted."""

from django.core.exceptions import ImproperlyConfigured


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


class StorageNotVerified(PurgeNotPossible, ImproperlyConfigured):
    """The configured storage is not (or cannot be verified to be) the one the database's files
    live in; nothing was deleted. The message names both storages and the way forward.
    ImproperlyConfigured too: code that knows nothing of the purge (demo seeding) can say so."""
