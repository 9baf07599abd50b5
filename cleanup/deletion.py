"""The ORM cascade the purge uses: Django's Collector, with a constant number of queries.

`QuerySet.delete()` collects everything a delete cascades to (the same `on_delete` handlers,
the same signals), then `Collector.delete()` deletes the fetched instances of each model through
`DeleteQuery.delete_batch`, which splits the primary keys into chunks of
`GET_ITERATOR_CHUNK_SIZE` (100). For a batch of 2,000 jobs with 4 files each that is 80 DELETEs
for the files, 20 for the reports and 20 for the jobs: the query count grows with the batch size
and is most of the distance between the ORM and hand-written SQL. The purge already bounds its
transaction by its own batch size, so here each model's collected rows go in one DELETE, split
only where the backend limits the number of query parameters (SQLite). Collection, deletion
order, fast deletes and pre/post_delete signals are Django's, unchanged.
"""

from collections import Counter
from operator import attrgetter

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F, Lookup, Q, signals
from django.db.models.deletion import Collector


class AnyOf(Lookup):
    """`column = ANY(%s)`: the values travel as one array parameter (PostgreSQL).

    `__in` renders one placeholder per value, and with thousands of values per batch building,
    rendering and re-parsing that SQL costs more than the database spends running it.
    """

    lookup_name = "any_of"  # used directly, never registered on a field
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection) for value in self.rhs]
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


def among(name, values, *, using=DEFAULT_DB_ALIAS):
    """A filter for `name__in=values`, as one array parameter where the backend has arrays."""
    if connections[using].vendor == "postgresql":
        return AnyOf(F(name), values)
    return Q(**{f"{name}__in": values})


def delete_cascading(queryset) -> tuple[int, dict[str, int]]:
    """`queryset.delete()`, the same cascade and signals, one DELETE per model."""
    queryset = queryset.order_by()  # the delete does not need the model's default ordering
    collector = OneStatementCollector(using=queryset.db, origin=queryset)
    collector.collect(queryset)
    return collector.delete()


class OneStatementCollector(Collector):
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
                if count := qs._raw_delete(using=self.using):
                    deleted[qs.model._meta.label] += count
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
        (field,) = related_fields
        keys = [getattr(obj, field.target_field.attname) for obj in objs]
        return related_model._base_manager.using(self.using).filter(
            among(field.attname, keys, using=self.using)
        )

    def _delete_rows(self, model, pks) -> int:
        pk = model._meta.pk
        # PostgreSQL has no limit here (one statement); SQLite caps the parameters per query.
        size = max(connections[self.using].ops.bulk_batch_size([pk], pks), 1)
        manager = model._base_manager.using(self.using)
        return sum(
            manager.filter(among(pk.attname, pks[start : start + size], using=self.using))
            ._raw_delete(using=self.using)
            for start in range(0, len(pks), size)
        )
