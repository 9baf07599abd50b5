"""What the services raise when a run cannot start: nothing was read from storage or deleted."""

from django.core.exceptions import ImproperlyConfigured


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


class StorageNotVerified(PurgeNotPossible, ImproperlyConfigured):
    """The configured storage is not (or cannot be shown to be) where the database's files live;
    nothing was deleted. ImproperlyConfigured too, for code that knows nothing of the purge."""
