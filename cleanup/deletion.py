"""The purge's cascade from public model metadata: one DELETE per model per batch down every
reverse CASCADE from jobs.Job, children first, returning file names, sending no signal."""

import contextlib
import contextvars
import functools
import json
from collections import namedtuple
from dataclasses import dataclass

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.db.models.signals import post_delete, pre_delete

from jobs.models import Job

from .file_models import file_fields, file_models

# What the plan cannot honour (cleanup/checks.py gives each its error id and fix).
NOT_CASCADE = "on_delete other than CASCADE"
GENERIC = "a generic relation"
UNDECLARED_FILES = "a file model not in CLEANUP_FILE_MODELS"
SHAPE = "a cycle or a multi-table parent"

Step = namedtuple("Step", "model sql")  # sql's one parameter, %(ids), is the batch's ids
# A batch's rows deleted per model and in all, and the deleted file rows' names (none empty).
Cascade = namedtuple("Cascade", "per_model file_names total")


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # children first, the root last
    paths: dict  # model: its ORM paths up ("report__job__"); root first, in the ledger's order
    problems: tuple[tuple[str, str], ...]  # (kind, what), kinds above

    def refuse_problems(self):
        if self.problems:
            what = self.problems[0][1]
            raise ImproperlyConfigured(f"the delete plan cannot honour {what}; nothing was deleted")

    def delete(self, ids) -> Cascade:
        self.refuse_problems()
        values = [self.steps[-1].model._meta.pk.get_db_prep_value(v, connection) for v in ids]
        batch = json.dumps(values) if connection.vendor == "sqlite" else values
        per_model, names = {}, []
        with transaction.atomic(savepoint=False), binding_cursor() as cursor:
            for model, sql in self.steps:
                cursor.execute(sql, {"ids": batch})
                rows = cursor.fetchall() if cursor.description else None  # RETURNING file names
                names += [str(v) for row in rows or () for v in row if v]
                per_model[model._meta.label] = cursor.rowcount if rows is None else len(rows)
        return Cascade(per_model, names, sum(per_model.values()))


def binding_cursor():
    """On PostgreSQL, a cursor binding parameters on the server: the ids go as one binary array,
    not as 1,000 quoted literals in each statement's text (Django's default, client-side binding:
    measured, 15% of a batch's time). Wrapped as Django's own, so query logs and wrappers see it."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    # Django's connection has prepare_threshold None: nothing is prepared (poolers stay safe).
    raw = psycopg.Cursor(connection.connection)
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    return wrap(raw)


_THROUGH_INDEXES = contextvars.ContextVar("through_indexes", default=False)


@contextlib.contextmanager
def through_indexes():
    """On PostgreSQL, statements take the indexes: default costs planned whole-table scans (18 rows
    read per row deleted at 20,000 jobs). Undone at the end or by rollback; nested: sends none."""
    if connection.vendor != "postgresql" or _THROUGH_INDEXES.get():
        yield
        return
    inside = _THROUGH_INDEXES.set(True)
    try:
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            yield
            cursor.execute("SET LOCAL enable_seqscan = DEFAULT")
    finally:
        _THROUGH_INDEXES.reset(inside)


def purge_plan(root=Job) -> Plan:
    """The plan for `root` and the declared file models (re-read: a test may override them)."""
    return build_plan(root, tuple(file_models()))


def cascade_paths(root=Job):
    """(model, its lookup path back to `root`) for every model a purge deletes rows of."""
    return [(model, up) for model, ups in purge_plan(root).paths.items() for up in ups]


@functools.cache
def build_plan(root, declared_file_models=()) -> Plan:
    edges, problems = {root: []}, []
    _walk(root, (root,), edges, problems, declared_file_models)
    quote = connection.ops.quote_name
    in_batch, in_parents = _conditions(root)

    @functools.cache
    def where(model) -> str:  # a model reached through several relations: any of them
        if model is root:
            return in_batch.format(quote(root._meta.pk.column))
        return " OR ".join(
            in_batch.format(quote(fk.column))
            if parent is root and fk.target_field.primary_key
            else in_parents.format(
                quote(fk.column),
                quote(fk.target_field.column),
                quote(parent._meta.db_table),
                where(parent),
            )
            for fk, parent in edges[model]
        )

    @functools.cache
    def lookups(model) -> tuple[str, ...]:
        if model is root:
            return ("",)
        return tuple(f"{fk.name}__{up}" for fk, parent in edges[model] for up in lookups(parent))

    steps = []
    # Children first: each way up from a model is a way up from a parent, extended.
    for model in sorted(edges, key=lambda model: max(map(len, lookups(model))), reverse=True):
        files = [quote(f.column) for f in file_fields(model) if model in declared_file_models]
        sql = f"DELETE FROM {quote(model._meta.db_table)} WHERE {where(model)}"
        steps.append(Step(model, sql + (f" RETURNING {', '.join(files)}" if files else "")))
    return Plan(tuple(steps), {model: lookups(model) for model in edges}, tuple(problems))


def _conditions(root) -> tuple[str, str]:
    """A column among the batch's ids; a column among the keys of a parent table's rows (the
    parent's condition last), as this database runs them fastest."""
    if connection.vendor == "sqlite":
        return "{} IN (SELECT value FROM json_each(%(ids)s))", "{} IN (SELECT {} FROM {} WHERE {})"
    # Arrays cast to the key's type (psycopg sends int2[]); parents' keys too: IN walked their pkey.
    in_batch = f"{{}} = ANY(%(ids)b::{root._meta.pk.cast_db_type(connection)}[])"
    return in_batch, "{} = ANY(ARRAY(SELECT {} FROM {} WHERE {}))"


def _walk(model, chain, edges, problems, declared_file_models):
    """Down the reverse relations of `model`, noting what a plain DELETE would not honour."""
    label = model._meta.label
    if file_fields(model) and model not in declared_file_models:
        problems.append((UNDECLARED_FILES, f"the FileField(s) of {label}"))
    for f in model._meta.get_fields(include_hidden=True):
        if f.one_to_many and not f.auto_created:  # a GenericRelation: no foreign key to follow
            problems.append((GENERIC, f"{label}.{f.name} ({type(f).__name__})"))
        if not (f.auto_created and not f.concrete and (f.one_to_many or f.one_to_one)):
            continue  # not a foreign key to `model` (a many-to-many's is its through model's)
        fk, child = f.field, f.related_model
        relation = f"{child._meta.label}.{fk.name} -> {label}"
        if (on_delete := fk.remote_field.on_delete) is not models.CASCADE:
            name = getattr(on_delete, "__name__", on_delete)
            problems.append((NOT_CASCADE, f"{relation} (on_delete={name})"))
        elif child in chain:
            problems.append((SHAPE, f"{relation} (a cycle)"))
        elif child._meta.parents and not fk.remote_field.parent_link:
            problems.append((SHAPE, f"{relation} (a model with a multi-table parent)"))
        elif child in edges:  # reached again, through another relation
            edges[child].append((fk, model))
        else:
            edges[child] = [(fk, model)]
            _walk(child, (*chain, child), edges, problems, declared_file_models)


# The pre/post_delete receivers whose work the purge does itself (receivers.py).
_OWN_RECEIVERS: list[tuple] = []


def connect_own_receiver(signal, receiver, sender, dispatch_uid):
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=dispatch_uid)
    _OWN_RECEIVERS.append((signal, receiver, sender, dispatch_uid))


def unheard_receivers(plan) -> list[str]:
    """The models in the plan with pre/post_delete receivers other than the purge's own."""
    # Signal has no public way to list its receivers: ours are taken off for the question.
    for signal, _, sender, uid in _OWN_RECEIVERS:
        signal.disconnect(sender=sender, dispatch_uid=uid)
    try:
        return [
            f"{model._meta.label} ({name})"
            for model in plan.paths
            for name, signal in (("pre_delete", pre_delete), ("post_delete", post_delete))
            if signal.has_listeners(model)
        ]
    finally:
        for signal, receiver, sender, uid in _OWN_RECEIVERS:
            signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
