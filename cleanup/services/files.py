"""Deleting pending files from storage and forgetting the names that are gone."""

import functools
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Lookup, Q
from django.utils import timezone

from .. import storage
from ..deletion import through_indexes
from ..file_models import file_fields, file_models, upload_rule
from ..models import PendingFileDeletion
from .binding import verify_storage

# A key's own failures back off; the storage's outage does not: the next run retries every name.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)


@dataclass
class FileDeletion:
    deleted: int = 0
    failed: int = 0
    stuck: int = 0  # of the failed, refused too often: still retried, but purge_status alerts
    requests: int = 0
    retries: int = 0  # requests the S3 client sent again (throttling, 5xx, dropped connections)
    unavailable: str = ""  # storage itself could not be reached (not some keys refused)
    errors: list[str] = field(default_factory=list)
    refused: int = 0  # names never sent (they break the upload-name rule), kept as refused
    refused_reasons: list[str] = field(default_factory=list)

    def add(self, other: "FileDeletion") -> "FileDeletion":
        for name in (f.name for f in fields(self)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, list):
                mine.extend(e for e in theirs if e not in mine)
            else:  # counts add up; the first reason storage was unavailable stays
                setattr(self, name, mine + theirs if isinstance(mine, int) else mine or theirs)
        return self


def delete_pending_files(
    *, names=None, due_before=None, session=None, storage_verified=False, recorded_as=None
) -> FileDeletion:
    """Delete pending files and forget the ones gone: `names` (`recorded_as` record()'s token), else
    every name due at `due_before`. One a row still references (in any spelling) is never deleted,
    one breaking the upload-name rule never sent; StorageNotVerified but on the bound storage."""
    if not storage_verified:
        verify_storage()
    session = session or open_storage()
    if names is not None:  # one pass: the queries do not grow with the names
        return finish_deleting(start_deleting(names, recorded_as, session))
    # The due rows in key order, each read once; only storage being unavailable stops it.
    result, after, size = FileDeletion(), 0, storage.S3_MAX_KEYS_PER_REQUEST
    due = PendingFileDeletion.objects.due(due_before or timezone.now()).order_by("pk")
    while not result.unavailable:
        rows = list(due.filter(pk__gt=after).values_list("pk", "name")[:size])
        if not rows:
            break
        after = rows[-1][0]
        chunk = start_deleting([name for _, name in rows], None, session, rows=rows)
        result.add(finish_deleting(chunk))
    return result


def open_storage():
    """A run's storage session; it refuses every name that breaks the upload-name rule."""
    return storage.open_session(upload_rule())


@dataclass
class BatchFiles:  # names whose storage step is under way (in a thread, for a purge batch)
    names: list[str]
    recorded_as: uuid.UUID | None
    started: datetime
    outcome: Future | storage.DeleteOutcome
    rows: list | None = None  # the sweep's (pk, name) rows of these names


def start_deleting(names, recorded_as, session, thread=None, *, rows=None, held=None) -> BatchFiles:
    """Start deleting names from storage, in `thread` (an executor) if given. Names a row still
    references (`held`, if the caller found them) are left out here: the storage thread never
    touches the database."""
    referenced = referenced_names(names) if held is None else held
    send = functools.partial(_send, [n for n in names if n not in referenced], session)
    outcome = thread.submit(send) if thread else send()
    return BatchFiles(names, recorded_as, timezone.now(), outcome, rows)


def finish_deleting(batch: BatchFiles) -> FileDeletion:
    """Wait for the storage step, then forget the names that are gone and mark the others."""
    outcome = batch.outcome.result() if isinstance(batch.outcome, Future) else batch.outcome
    waiting = {**outcome.deferred, **outcome.failed}
    kept = waiting.keys() | outcome.refused.keys()
    if batch.recorded_as is not None:
        deleted = _forget_recorded(batch.recorded_as, keep=kept)
    else:
        unresolved = PendingFileDeletion.objects.unresolved()
        rows = batch.rows or unresolved.filter(among("name", batch.names)).values_list("pk", "name")
        deleted = _forget_unowned([pk for pk, name in rows if name not in kept])
    return FileDeletion(
        deleted=min(deleted, len(outcome.deleted)),
        failed=len(waiting),
        stuck=_mark(outcome, waiting, batch.started),
        requests=outcome.requests,
        retries=outcome.retries,
        unavailable=outcome.unavailable,
        errors=sorted(set(waiting.values())),
        refused=len(outcome.refused),
        refused_reasons=sorted(set(outcome.refused.values())),
    )


def _send(names, session) -> storage.DeleteOutcome:
    try:
        return storage.delete_names(names, session=session)
    except Exception as exc:  # noqa: BLE001 - a chunk that fails this way fails alone
        return storage.DeleteOutcome(failed=dict.fromkeys(names, storage.describe_error(exc)))


def _forget_recorded(recorded_as, *, keep) -> int:
    """Forget the rows one record() wrote but `keep`'s; returns how many went. No lock first: a
    sweep takes them only with SKIP LOCKED, and each is counted by whichever run removes it."""
    mine = PendingFileDeletion.objects.unresolved().filter(batch=recorded_as)
    if keep:
        mine = mine.exclude(among("name", list(keep)))
    return mine.delete()[0]


def _forget_unowned(pks) -> int:
    """Forget these rows but those someone else holds (SKIP LOCKED); returns how many went. Two
    statements: DELETE … IN (SELECT … SKIP LOCKED) ran quadratically (tests/test_scale.py)."""
    removed = 0
    for part in _param_chunks(pks):
        with transaction.atomic():
            rows = PendingFileDeletion.objects.filter(among("pk", part)).order_by()
            mine = list(rows.select_for_update(skip_locked=True).values_list("pk", flat=True))
            if mine:
                removed += PendingFileDeletion.objects.filter(among("pk", mine)).delete()[0]
    return removed


def referenced_names(names, recorded_as=None) -> set[str]:
    """The names among `names` that a row still references, in any spelling (`jobs//A/p.png`).
    `recorded_as`: record()'s token of exactly these names, to match them in the outbox."""
    fields = [(model, f) for model in file_models() for f in file_fields(model)]
    return set().union(
        *(_names_matching(m._default_manager, f.attname, names, recorded_as) for m, f in fields)
    )


def pending_names(names) -> set[str]:
    """The names among `names` that a pending deletion (in any spelling) holds."""
    return _names_matching(PendingFileDeletion.objects, "name", names)


def _names_matching(manager, column, names, recorded_as=None) -> set[str]:
    wanted, held = set(names), set()
    # The rows spelled otherwise: few, found by a partial index on this condition (migration 0008).
    odd = manager.filter(**{f"{column}__regex": storage.names.NON_CANONICAL_PATTERN}).order_by()
    if recorded_as is not None and names:
        # Joined in the database: a batch's 4,000 names sent back as a parameter cost ~10 ms.
        outbox = PendingFileDeletion.objects.filter(batch=recorded_as).values("name")
        parts = [Q(**{f"{column}__in": outbox})]
    else:
        parts = [among(column, part) for part in _param_chunks(list(names))]
    for index, part in enumerate(parts):
        exact = manager.filter(part).order_by().values_list(column, flat=True)
        if index == 0:
            # One query: each half uses its own index (an OR of the two would scan the table).
            exact = exact.union(odd.values_list(column, flat=True), all=True)
        with through_indexes():  # the planner scanned 400,000 rows for 20,000 names
            values = list(exact)
        for value in values:
            held |= {value} if value in wanted else storage.names.addresses(value) & wanted
    return held


def _param_chunks(values):
    """`values` whole where the backend takes any number of query parameters (PostgreSQL)."""
    size = connection.features.max_query_params or max(len(values), 1)
    return [values[start : start + size] for start in range(0, len(values), size)]


def _mark(outcome, waiting, now) -> int:
    """Record why names stay; returns how many are now stuck. Storage's own failure (deferred)
    counts no attempt against the names."""
    unresolved = PendingFileDeletion.objects.unresolved()
    # A handful at most (legacy or crafted names): one UPDATE per reason.
    for reason in set(outcome.refused.values()):
        names = [name for name, why in outcome.refused.items() if why == reason]
        unresolved.filter(name__in=names).update(refused_reason=reason)
    rows = list(unresolved.filter(name__in=waiting))
    for row in rows:
        charged = row.name in outcome.failed
        row.last_error = waiting[row.name]
        row.attempts += 1 if charged else 0
        backoff = min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
        row.next_attempt_at = now + backoff if charged else now
    PendingFileDeletion.objects.bulk_update(
        rows, ["attempts", "last_error", "next_attempt_at"], batch_size=500
    )
    charged = [row.pk for row in rows if row.name in outcome.failed]
    return PendingFileDeletion.objects.filter(pk__in=charged).stuck().count()


class AnyOf(Lookup):
    """`column = ANY(%s::type[])`: one parameter, not `__in`'s one per value. Cast, as psycopg
    sends small ints as smallint[] and `bigint = ANY(smallint[])` is not hashed (test_scale)."""

    lookup_name = "any_of"  # used directly, never registered on a field
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = self.rhs
        # Values as the ORM returned them need no preparing (tens of thousands a batch).
        target = field.target_field if field.is_relation else field
        native = _NATIVE.get(target.get_internal_type())
        if not all(type(value) is native for value in values):
            values = [field.get_db_prep_value(value, connection) for value in values]
        return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", (*lhs_params, values)


# The Python type psycopg sends as these fields' own column type, unchanged by get_db_prep_value.
_NATIVE = {"UUIDField": uuid.UUID, "CharField": str, "TextField": str, "FileField": str}
_NATIVE.update(dict.fromkeys(("AutoField", "BigAutoField", "BigIntegerField", "IntegerField"), int))


def among(name, values):
    """A filter for `name__in=values`, as one array parameter where the backend has arrays."""
    if connection.vendor == "postgresql":
        return AnyOf(F(name), values)
    return Q(**{f"{name}__in": values})
