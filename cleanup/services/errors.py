from django.core.exceptions import ImproperlyConfigured


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


class StorageNotVerified(PurgeNotPossible, ImproperlyConfigured):
    """Storage not shown to be where the database's files live (ImproperlyConfigured to all)."""
