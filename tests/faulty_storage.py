"""Local file storages that misbehave the way real ones do, for the resilience tests."""

import os
import time
from pathlib import Path

import psycopg
from django.core.files.storage import FileSystemStorage
from django.db import connection


class SlowFileSystemStorage(FileSystemStorage):
    """Takes its time deleting, so a test can catch a purge mid-run."""

    delay = float(os.environ.get("FMR_TEST_STORAGE_DELAY", "0.05"))

    def delete(self, name):
        if flag := os.environ.get("FMR_TEST_DELETING_FLAG"):
            Path(flag).touch()  # a signal the test waits for: the purge is in its file step
        time.sleep(self.delay)
        super().delete(name)


class PartitionedStorage(FileSystemStorage):
    """A network partition: storage unreachable, and the purge's database connection cut too.

    Each delete has the server terminate the purge's PostgreSQL connections (every other
    session on its database, from a session of its own, as a failover or a dropped link would:
    the purge deletes files in a thread of its own, not the one holding the connection), then
    fails.
    """

    def delete(self, name):
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            autocommit=True,
        ) as other:
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        raise OSError("network is unreachable")
