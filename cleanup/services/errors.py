"""What the services raise when a run cannot start: nothing was read from storage or deleted."""


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


class StorageNotVerified(PurgeNotPossible):
    """The configured storage is not the one the database's files live in, or cannot be
    verified to be; nothing was deleted. The message names both storages and the way forward."""
