"""Deleting pending files from storage and forgetting the names that are gone."""

import logging
import uuid
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Lookup, Q
from django.utils import timezone

from .. import storage
from ..file_models import file_fields, file_models, upload_rule
from ..models import PendingFileDeletion
from .binding import verify_storage

logger = logging.getLogger(__name__)

# Per-key failures (a bad key, a permission) back off so they do not cost every run a request;
# an outage of the whole endpoint does not: every name is retried as soon as a run comes.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)


@dataclass
class FileDeletion:
    deleted: int = 0
    failed: int = 0
    # Of the failed, those storage has now refused CLEANUP_STUCK_AFTER_ATTEMPTS times or more:
    # still pending and retried, but alerted by purge_status instead of failing every run.
    stuck: int = 0
    requests: int = 0
    retries: int = 0  # requests the S3 client sent again (throttling, 5xx, dropped connections)
    # Set when storage itself could not be reached, as opposed to some keys being refused.
    unavailable: str = ""
    errors: list[str] = field(default_factory=list)
    # Names never sent to storage (not a canonical key under the upload prefix), kept as refused.
    refused: int = 0
    refused_reasons: list[str] = field(default_factory=list)

    def add(self, other: "FileDeletion"):
        self.deleted += other.deleted
        self.failed += other.failed
        self.stuck += other.stuck
        self.requests += other.requests
        self.retries += other.retries
        self.unavailable = self.unavailable or other.unavailable
        self.errors.extend(e for e in other.errors if e not in self.errors)
        self.refused += other.refused
        self.refused_reasons.extend(
            r for r in other.refused_reasons if r not in self.refused_reasons
        )


def delete_pending_files(
    *,
    names: list[str] | None = None,
    due_before: datetime | None = None,
    session=None,
    storage_verified: bool = False,
    recorded_as: uuid.UUID | None = None,
) -> FileDeletion:
    """Delete pending files from storage and forget the ones that are gone.

    With `names`, exactly those (just recorded by a delete); otherwise every pending name that
    is due (its next attempt at or before `due_before`, default now; a name a person marked
    resolved is not). A name that a row still references, in any spelling, is never deleted from
    storage; a name that breaks the upload-name rule is never sent to storage (it stays pending,
    marked refused, with the reason). `session` is the run's storage session (open_storage()).

    Refuses (StorageNotVerified, nothing deleted) when the configured storage is not the one the
    database's files live in; `storage_verified` is for a caller that has just checked (the
    purge, once per run). `recorded_as` is what PendingFileDeletion.objects.record() returned
    for `names`: the rows the caller itself just wrote, forgotten without locking first.
    """
    if not storage_verified:
        verify_storage()
    result = FileDeletion()
    now = timezone.now()
    due_before = due_before or now
    session = session or open_storage()
    if names is not None:
        # One pass for a whole purge batch: storage splits its own requests (1,000 keys per S3
        # request, and stops at an outage), and the database side is one statement per step, so
        # a batch's file work costs the same few queries whatever the batch size.
        return _delete_chunk(names, now, session, recorded_as=recorded_as)
    after = 0
    while True:
        # Through the due rows in key order (the primary key's index, so the whole sweep reads
        # each row once however many are pending). A chunk whose names all fail does not stop
        # it: only storage itself being unavailable does.
        rows = list(
            PendingFileDeletion.objects.due(due_before)
            .filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "name")[: storage.S3_MAX_KEYS_PER_REQUEST]
        )
        if not rows:
            return result
        after = rows[-1][0]
        outcome = _delete_chunk([name for _, name in rows], now, session, rows=rows)
        result.add(outcome)
        if outcome.unavailable:
            return result


def open_storage():
    """A run's storage session; it refuses every name that breaks the upload-name rule."""
    return storage.open_session(upload_rule())


def _settle(result: FileDeletion, outcome, now):
    """Count what storage did not delete, and record why, on the names' pending rows."""
    refused = outcome.refused
    waiting = {**outcome.deferred, **outcome.failed}
    result.failed = len(waiting)
    result.refused = len(refused)
    result.refused_reasons = sorted(set(refused.values()))
    result.unavailable = outcome.unavailable
    result.errors = sorted(set(waiting.values()))
    result.stuck = _mark_failed(outcome.failed, now, storage_failed=False)
    _mark_failed(outcome.deferred, now, storage_failed=True)
    if refused:
        _mark_refused(refused)


def _delete_chunk(names, now, session, *, recorded_as=None, rows=None) -> FileDeletion:
    outcome = _send(_unreferenced(names), session)
    return _record(names, outcome, now, recorded_as=recorded_as, rows=rows)


@dataclass
class BatchFiles:
    """A committed purge batch's storage step, under way in another thread."""

    names: list[str]
    recorded_as: uuid.UUID
    started: datetime
    outcome: Future


def start_batch_files(names, recorded_as, session, thread) -> BatchFiles:
    """Start deleting a just-committed batch's files in `thread` (an executor), to overlap the
    next batch's database work. The names a row still references are left out here, in the
    caller's thread: the storage thread never touches the database (connections are per thread),
    so the outcome is recorded by finish_batch_files(), in the caller's thread again."""
    outcome = thread.submit(_send, _unreferenced(names), session)
    return BatchFiles(names, recorded_as, timezone.now(), outcome)


def finish_batch_files(batch: BatchFiles) -> FileDeletion:
    """Wait for a batch's storage step, then forget its names that are gone, mark the others."""
    outcome = batch.outcome.result()
    return _record(batch.names, outcome, batch.started, recorded_as=batch.recorded_as)


def _unreferenced(names) -> list[str]:
    referenced = referenced_names(names)
    return [n for n in names if n not in referenced]


def _send(names, session) -> storage.DeleteOutcome:
    try:
        # Names that are not a canonical key under the upload prefix come back refused, unsent.
        return storage.delete_names(names, session=session)
    except Exception as exc:  # noqa: BLE001 - a chunk that fails this way fails alone
        return storage.DeleteOutcome(failed=dict.fromkeys(names, storage.describe_error(exc)))


def _record(names, outcome, now, *, recorded_as=None, rows=None) -> FileDeletion:
    kept = {*outcome.failed, *outcome.deferred, *outcome.refused}
    if recorded_as is not None:
        deleted = _forget_recorded(recorded_as, keep=kept)
    else:
        if rows is None:
            rows = PendingFileDeletion.objects.unresolved().filter(among("name", names))
            rows = list(rows.values_list("pk", "name"))
        deleted = _forget_unowned([pk for pk, name in rows if name not in kept])
    result = FileDeletion(
        deleted=min(deleted, len(outcome.deleted)),
        requests=outcome.requests,
        retries=outcome.retries,
    )
    _settle(result, outcome, now)
    return result


def _forget_recorded(recorded_as, *, keep) -> int:
    """Forget the pending rows one record() wrote (a purge batch's, or a delete's), known by the
    token it put on them, but those of `keep`; returns how many rows this call removed.

    No other run writes these rows, and a run that takes them in its sweep locks them only for
    its own short delete, never waiting on anyone (SKIP LOCKED in _forget_unowned), so deleting
    them can wait briefly but never deadlock; each row is counted by whichever run removes it.
    No lock first: locking 20,000 rows costs as much again as deleting them. One statement,
    through the index on `batch`: it reads this batch's rows, not other batches' or old ones'.
    """
    mine = PendingFileDeletion.objects.unresolved().filter(batch=recorded_as)
    if keep:
        mine = mine.exclude(among("name", list(keep)))
    return mine.delete()[0]


def _forget_unowned(pks) -> int:
    """Forget these pending rows, those no one else holds; returns how many this call removed.

    Rows someone else may be forgetting too (purges side by side: one's sweep, another's batch)
    are skipped, not waited for, so no purge waits on or deadlocks with another. Two statements
    by primary key, not DELETE … WHERE id IN (SELECT … SKIP LOCKED): with the table analyzed
    while empty (a database with history) the planner ran that as a nested loop re-running the
    locking subquery per row, quadratic in the rows (measured: 2,000,000 rows read to forget
    2,000 names; tests/test_scale.py).
    """
    removed = 0
    for part in _param_chunks(pks):
        with transaction.atomic():
            mine = list(
                PendingFileDeletion.objects.filter(among("pk", part))
                .select_for_update(skip_locked=True)
                .order_by()
                .values_list("pk", flat=True)
            )
            if mine:
                removed += PendingFileDeletion.objects.filter(among("pk", mine)).delete()[0]
    return removed


def referenced_names(names) -> set[str]:
    """The names among `names` (storage keys) that a row still references, in any spelling.

    A name a live row still points at is not garbage, whatever the pending table says. Rows are
    matched exactly, plus the few rows whose names are not canonical (found by pattern, in the
    same query) by the keys they resolve to: a live `jobs//A/p.png` holds `jobs/A/p.png`.
    """
    referenced = set()
    for model in file_models():
        for f in file_fields(model):
            found = _names_matching(model._default_manager, f.attname, names)
            referenced.update(found)
    return referenced


def pending_names(names) -> set[str]:
    """The names among `names` that a pending deletion (in any spelling) holds."""
    return _names_matching(PendingFileDeletion.objects, "name", names)


def _names_matching(manager, column, names) -> set[str]:
    wanted = set(names)
    held = set()
    # The rows spelled otherwise: few, and on PostgreSQL found through a partial index on
    # exactly this condition (migration 0008), so this costs no scan of the table.
    odd = manager.filter(**{f"{column}__regex": storage.names.NON_CANONICAL_PATTERN}).order_by()
    for index, part in enumerate(_param_chunks(list(names))):
        exact = manager.filter(among(column, part)).order_by().values_list(column, flat=True)
        if index == 0:
            # One query: each half uses its own index (an OR of the two would scan the table).
            exact = exact.union(odd.values_list(column, flat=True), all=True)
        with _through_indexes():
            found = list(exact)
        for value in found:
            if value in wanted:
                held.add(value)
            else:
                held.update(storage.names.addresses(value) & wanted)
    return held


@contextmanager
def _through_indexes():
    """Look the names up through their indexes, whatever the planner's estimates.

    For 20,000 names PostgreSQL picks a (parallel) scan of the whole file table once it holds
    a few hundred thousand rows: measured at 400,000 rows, 124 ms against 67 ms through the
    index, and the scan grows with the table while the probes do not. (A table with no index
    on the column is still scanned: this only tells the planner not to prefer it.)
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        try:
            yield
        finally:
            cursor.execute("SET LOCAL enable_seqscan = DEFAULT")


def _param_chunks(values):
    """`values` whole where the backend takes any number of query parameters (PostgreSQL)."""
    size = connection.features.max_query_params or max(len(values), 1)
    return [values[start : start + size] for start in range(0, len(values), size)]


def _mark_refused(refused: dict[str, str]):
    # A handful at most (legacy or crafted names): one UPDATE per reason.
    by_reason = {}
    for name, reason in refused.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        PendingFileDeletion.objects.unresolved().filter(name__in=names).update(
            refused_reason=reason
        )


def _mark_failed(failed: dict[str, str], now, *, storage_failed: bool) -> int:
    """Record the failures; returns how many of these names are now stuck.

    When storage itself failed (`storage_failed`: an outage, a 5xx, throttling), the names were
    not refused: that does not count as an attempt (an outage does not make names stuck, so none
    of them is counted as stuck here), and they are retried as soon as a run comes.
    """
    if not failed:
        return 0
    rows = list(PendingFileDeletion.objects.unresolved().filter(name__in=failed))
    for row in rows:
        row.last_error = failed[row.name]
        if storage_failed:
            row.next_attempt_at = now
            continue
        row.attempts += 1
        row.next_attempt_at = now + min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
    PendingFileDeletion.objects.bulk_update(
        rows, ["attempts", "last_error", "next_attempt_at"], batch_size=500
    )
    if storage_failed:
        return 0
    return PendingFileDeletion.objects.filter(pk__in=[row.pk for row in rows]).stuck().count()


class AnyOf(Lookup):
    """`column = ANY(%s::type[])`: the values travel as one array parameter (PostgreSQL).

    `__in` renders one placeholder per value, and with thousands of values per batch building,
    rendering and re-parsing that SQL costs more than the database spends running it.

    The array is cast to the column's own type. Left to itself psycopg sends a list of small
    integers as smallint[] (int2), and `bigint = ANY(smallint[])` is a cross-type comparison
    PostgreSQL cannot hash: measured, deleting 20,000 outbox rows by id took 400 ms that way and
    21 ms with the cast (tests/test_scale.py checks the plan).
    """

    lookup_name = "any_of"  # used directly, never registered on a field
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = self.rhs
        # Keys, ids and names as the ORM itself returned them need no preparing, and a batch
        # has tens of thousands of them: prepare only values of another type.
        native = _NATIVE.get(
            (field.target_field if field.is_relation else field).get_internal_type()
        )
        if not all(type(value) is native for value in values):
            values = [field.get_db_prep_value(value, connection) for value in values]
        return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", (*lhs_params, values)


# The Python type psycopg sends as these fields' own column type, unchanged by get_db_prep_value.
_NATIVE = {
    "UUIDField": uuid.UUID,
    "AutoField": int,
    "BigAutoField": int,
    "BigIntegerField": int,
    "IntegerField": int,
    "CharField": str,
    "TextField": str,
    "FileField": str,
}


def among(name, values):
    """A filter for `name__in=values`, as one array parameter where the backend has arrays."""
    if connection.vendor == "postgresql":
        return AnyOf(F(name), values)
    return Q(**{f"{name}__in": values})
