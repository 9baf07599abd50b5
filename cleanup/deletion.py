"""The ORM cascade the purge uses: Django's Collector, with a constant number of queries.

`QuerySet.delete()` collects everything a delete cascades to (the same `on_delete` handlers,
the same signals), then `Collector.delete()` deletes the fetched instances of each model through
`DeleteQuery.delete_batch`, which splits the primary keys into chunks of
`GET_ITERATOR_CHUNK_SIZE` (100); see https://code.djangoproject.com/ticket/9519 ("Add
QuerySet.bulk_delete() that issues only a single SQL query"), open since 2008. For a batch of
2,000 jobs with 4 files each that is 80 DELETEs for the files, 20 for the reports and 20 for the
jobs: the query count grows with the batch size and is most of the distance between the ORM and
hand-written SQL. The purge already bounds its transaction by its own batch size, so here each
model's collected rows go in one DELETE, split only where the backend limits the number of query
parameters (SQLite). Collection, deletion order, fast deletes and pre/post_delete signals are
Django's, unchanged.

Copied from Django, and pinned by tests/test_upstream_pins.py (which fails, saying what to
re-check, on a Django whose originals differ): `OneStatementCollector.delete` is
`Collector.delete` without the chunking and without the paths this schema never takes (field
updates: it defers to Django's own `delete` when there are any), and it
calls the private `QuerySet._raw_delete`, as Django's does.

The purge records the file names of its batch itself (`file_models`): from one
`DELETE … RETURNING` when only the receivers whose work the purge does listen to those models
(`purge_does_the_work_of`), or from the instances the collector fetched when anyone else does.
Its deletes are marked (`records_its_own_files`) so the post_delete receivers for deletes
outside the purge skip them. A subtree nobody listens to is deleted the way Django fast-deletes
a leaf: children first, one DELETE per model, no row fetched.
"""

import uuid
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import F, Lookup, Q, signals
from django.db.models.deletion import (
    CASCADE,
    DO_NOTHING,
    Collector,
    get_candidate_relations_to_delete,
)

from .file_models import file_fields


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


def among(name, values, *, using=DEFAULT_DB_ALIAS):
    """A filter for `name__in=values`, as one array parameter where the backend has arrays."""
    if connections[using].vendor == "postgresql":
        return AnyOf(F(name), values)
    return Q(**{f"{name}__in": values})


def cascade_paths(model, prefix=""):
    """Every model a delete of `model` cascades to, with the lookup path back to `model`."""
    yield model, prefix
    for rel in model._meta.related_objects:
        if rel.on_delete is models.CASCADE:
            yield from cascade_paths(rel.related_model, f"{rel.field.name}__{prefix}")


# Set on the queryset a purge deletes, which Django passes as `origin` with every signal.
_RECORDS_ITS_OWN_FILES = "cleanup_records_its_own_files"


def records_its_own_files(origin) -> bool:
    """Whether a delete's caller records its file names itself (the purge's batches do)."""
    return getattr(origin, _RECORDS_ITS_OWN_FILES, False)


# Receivers that exist for deletes outside the purge and whose work the purge does itself
# (cleanup/receivers.py registers them): a file model whose only delete receivers are these is
# fast-deleted like any model without receivers, its file names returned by the DELETE itself.
_WORK_DONE_BY_THE_PURGE: set = set()


def purge_does_the_work_of(receiver):
    """Mark a pre/post_delete receiver whose work the purge's cascade does itself."""
    _WORK_DONE_BY_THE_PURGE.add(receiver)
    return receiver


@dataclass
class Cascade:
    total: int
    per_model: dict[str, int]
    # The stored names the deleted rows of `file_models` held (empty names left out).
    file_names: list[str] = field(default_factory=list)


def delete_cascading(queryset, *, file_models=(), pks=None) -> Cascade:
    """`queryset.delete()`, the same cascade and signals, one DELETE per model.

    The file names of the deleted rows of `file_models` are returned, so the caller can record
    them in the same transaction; it then owns that duty, and receivers see the delete as one
    that does. Such rows are fetched as instances (and their signals sent) only when some other
    receiver listens to their deletes; otherwise one DELETE … RETURNING gives their names.
    `pks`: the primary keys `queryset` selects, when the caller knows them (it saves subqueries).
    """
    queryset = queryset.order_by()  # the delete does not need the model's default ordering
    if file_models:
        setattr(queryset, _RECORDS_ITS_OWN_FILES, True)
    collector = OneStatementCollector(
        using=queryset.db, origin=queryset, file_models=file_models, origin_pks=pks
    )
    collector.collect(queryset)
    total, per_model = collector.delete()
    names = list(collector.returned_names)
    for model in collector.file_models:
        for instance in collector.data.get(model, []):
            names.extend(_names_in(instance, file_fields(model)))
    return Cascade(total=total, per_model=per_model, file_names=names)


def _names_in(row, fields) -> list[str]:
    values = (getattr(row, f.attname) for f in fields)
    return [str(value) for value in values if value]


class OneStatementCollector(Collector):
    def __init__(self, *args, file_models=(), origin_pks=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_models = frozenset(file_models)
        self.origin_pks = origin_pks
        self.returned_names: list[str] = []

    def _has_signal_listeners(self, model):
        if model in self.file_models and all(
            receiver in _WORK_DONE_BY_THE_PURGE
            for signal in (signals.pre_delete, signals.post_delete)
            for receivers in signal._live_receivers(model)
            for receiver in receivers
        ):
            return False  # only ours, whose work this delete does: Django's fast delete applies
        return super()._has_signal_listeners(model)

    def can_fast_delete(self, objs, from_field=None):
        if super().can_fast_delete(objs, from_field):
            return True
        # Django fast-deletes only leaves (models nothing cascades from). The same reasoning
        # holds for a whole subtree: when no model in it has delete receivers, fetching its rows
        # would only feed signals nobody hears. Such a queryset is deleted children first, each
        # by one DELETE with a subquery, as hand-written SQL would (see _fast_delete).
        if not hasattr(objs, "_raw_delete"):  # querysets only; an instance is already fetched
            return False
        if from_field and from_field.remote_field.on_delete is not CASCADE:
            return False
        return self._cascades_unheard(objs.model)

    def _cascades_unheard(self, model, seen=frozenset()) -> bool:
        """No delete receivers on `model` or on anything its delete cascades to, and nothing a
        plain DELETE would not do: every relation to it CASCADE (or DO_NOTHING), no parent
        model, no generic relation."""
        opts = model._meta
        if (
            model in seen
            or self._has_signal_listeners(model)
            or opts.parents
            or any(hasattr(f, "bulk_related_objects") for f in opts.private_fields)
        ):
            return False
        for related in get_candidate_relations_to_delete(opts):
            on_delete = related.field.remote_field.on_delete
            if on_delete is DO_NOTHING:
                continue
            if on_delete is not CASCADE:
                return False
            if not self._cascades_unheard(related.related_model, seen | {model}):
                return False
        return True

    def _fast_delete(self, qs, pks=None) -> Counter:
        """Delete what `qs` selects and everything its rows cascade to, children first.

        `pks`, when known (the origin's keys), filter the children directly rather than through
        a subquery on `qs`."""
        deleted = Counter()
        for related in get_candidate_relations_to_delete(qs.model._meta):
            fk = related.field
            if fk.remote_field.on_delete is DO_NOTHING:
                continue
            manager = related.related_model._base_manager.using(self.using)
            if pks is not None and fk.target_field.primary_key:
                children = manager.filter(among(fk.attname, pks, using=self.using))
            else:
                children = manager.filter(**{f"{fk.name}__in": qs.values(fk.target_field.attname)})
            deleted += self._fast_delete(children)
        if qs.model in self.file_models:
            count = self._delete_returning_names(qs)
        else:
            count = qs._raw_delete(using=self.using)
        if count:
            deleted[qs.model._meta.label] += count
        return deleted

    def delete(self):
        if self.field_updates:
            # SET_NULL / SET_DEFAULT relations: none in this schema; Django's path handles them.
            return super().delete()
        for model, instances in self.data.items():
            self.data[model] = sorted(instances, key=attrgetter("pk"))
        self.sort()
        deleted = Counter()
        with transaction.atomic(using=self.using, savepoint=False):
            for model, obj in self.instances_with_model():
                if not model._meta.auto_created:
                    signals.pre_delete.send(
                        sender=model, instance=obj, using=self.using, origin=self.origin
                    )
            for qs in self.fast_deletes:
                deleted += self._fast_delete(qs, self.origin_pks if qs is self.origin else None)
            for model, instances in self.data.items():
                if count := self._delete_rows(model, [obj.pk for obj in reversed(instances)]):
                    deleted[model._meta.label] += count
                if not model._meta.auto_created:
                    for obj in instances:
                        signals.post_delete.send(
                            sender=model, instance=obj, using=self.using, origin=self.origin
                        )
        for model, instances in self.data.items():
            for instance in instances:
                setattr(instance, model._meta.pk.attname, None)
        return sum(deleted.values()), dict(deleted)

    def related_objects(self, related_model, related_fields, objs):
        if len(related_fields) != 1 or connections[self.using].vendor != "postgresql":
            return super().related_objects(related_model, related_fields, objs)
        (fk,) = related_fields
        keys = [getattr(obj, fk.target_field.attname) for obj in objs]
        return related_model._base_manager.using(self.using).filter(
            among(fk.attname, keys, using=self.using)
        )

    def _delete_returning_names(self, qs) -> int:
        """qs._raw_delete(), also handing back the file names the deleted rows held."""
        connection = connections[self.using]
        quote = connection.ops.quote_name
        fields = file_fields(qs.model)
        where, params = qs.query.get_compiler(self.using).compile(qs.query.where)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {quote(qs.model._meta.db_table)} WHERE {where} "
                f"RETURNING {', '.join(quote(f.column) for f in fields)}",
                params,
            )
            rows = cursor.fetchall()
        for row in rows:
            self.returned_names.extend(str(value) for value in row if value)
        return len(rows)

    def _delete_rows(self, model, pks) -> int:
        pk = model._meta.pk
        # PostgreSQL has no limit here (one statement); SQLite caps the parameters per query.
        size = max(connections[self.using].ops.bulk_batch_size([pk], pks), 1)
        manager = model._base_manager.using(self.using)
        return sum(
            manager.filter(
                among(pk.attname, pks[start : start + size], using=self.using)
            )._raw_delete(using=self.using)
            for start in range(0, len(pks), size)
        )
