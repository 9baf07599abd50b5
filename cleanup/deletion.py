"""The purge's cascade: an explicit delete plan from the models' public metadata.

From jobs.Job down every reverse CASCADE relation, one DELETE per model, children first, by foreign
key (the batch's ids, or a subquery on the parent): the statements do not grow with the batch. The
file models' DELETEs return their names (RETURNING) for the outbox. No signal is sent: what the plan
cannot honour is in `problems` (checks.py reports it; a batch refuses to run).
"""

import functools
import json
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Step:
    model: type[models.Model]
    sql: str  # every %s in it is the batch's ids
    lookups: tuple[str, ...]  # ORM paths back to the root ("report__job__"), one per relation
    returns_names: bool = False


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # children first, the root last
    order: tuple[type[models.Model], ...]  # root first, in cascade order (the ledger's columns)
    problems: tuple[tuple[str, str], ...]  # (kind, what), kinds above

    def refuse_problems(self):
        if self.problems:
            raise ImproperlyConfigured(
                f"the purge's delete plan cannot honour {self.problems[0][1]} "
                "(see `manage.py check`); nothing was deleted"
            )

    def delete(self, ids) -> "Cascade":
        self.refuse_problems()
        pk = self.order[0]._meta.pk
        values = [pk.get_db_prep_value(value, connection) for value in ids]
        batch = json.dumps(values) if connection.vendor == "sqlite" else values
        cascade = Cascade()
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            for step in self.steps:
                cursor.execute(step.sql, [batch] * step.sql.count("%s"))
                count = cursor.rowcount
                if step.returns_names:
                    rows = cursor.fetchall()
                    cascade.file_names += [str(v) for row in rows for v in row if v]
                    count = len(rows)
                cascade.per_model[step.model._meta.label] = count
        return cascade


@dataclass
class Cascade:
    per_model: dict[str, int] = field(default_factory=dict)
    file_names: list[str] = field(default_factory=list)  # of the deleted file rows, none empty

    @property
    def total(self) -> int:
        return sum(self.per_model.values())


def purge_plan() -> Plan:
    """The plan for jobs.Job and the declared file models (re-read: a test may override them)."""
    return build_plan(Job, tuple(file_models()))


def cascade_paths(root):
    """Every model a purge of `root` deletes rows of, with its lookup path back to `root`."""
    plan = build_plan(root, tuple(file_models()))
    lookups = {step.model: step.lookups for step in plan.steps}
    return [(model, lookup) for model in plan.order for lookup in lookups[model]]


@functools.cache
def build_plan(root, declared_file_models=()) -> Plan:
    edges, problems = {root: []}, []
    _walk(root, (root,), edges, problems, declared_file_models)
    quote = connection.ops.quote_name
    if connection.vendor == "sqlite":
        in_batch = "{} IN (SELECT value FROM json_each(%s))"
    else:  # one array parameter, cast to the key's type (psycopg sends small ints as int2[])
        in_batch = f"{{}} = ANY(%s::{root._meta.pk.cast_db_type(connection)}[])"

    @functools.cache
    def where(model) -> str:  # a model reached through several relations: any of them
        if model is root:
            return in_batch.format(quote(root._meta.pk.column))
        return " OR ".join(
            in_batch.format(quote(fk.column))
            if parent is root and fk.target_field.primary_key
            else f"{quote(fk.column)} IN (SELECT {quote(fk.target_field.column)} "
            f"FROM {quote(parent._meta.db_table)} WHERE {where(parent)})"
            for fk, parent in edges[model]
        )

    @functools.cache
    def depth(model) -> int:  # children first: below every parent it has
        return max((depth(parent) + 1 for _, parent in edges[model]), default=0)

    @functools.cache
    def lookups(model) -> tuple[str, ...]:
        if model is root:
            return ("",)
        return tuple(f"{fk.name}__{up}" for fk, parent in edges[model] for up in lookups(parent))

    steps = []
    for model in sorted(edges, key=depth, reverse=True):
        sql = f"DELETE FROM {quote(model._meta.db_table)} WHERE {where(model)}"
        files = file_fields(model) if model in declared_file_models else []
        if files:
            sql += f" RETURNING {', '.join(quote(f.column) for f in files)}"
        steps.append(Step(model, sql, lookups(model), bool(files)))
    return Plan(tuple(steps), tuple(edges), tuple(problems))


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
        on_delete = fk.remote_field.on_delete
        if on_delete is not models.CASCADE:
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
    return [
        f"{model._meta.label} ({name})"
        for model in plan.order
        for name, signal in (("pre_delete", pre_delete), ("post_delete", post_delete))
        if _others_listen(signal, model)
    ]


def _others_listen(signal, model) -> bool:
    # Signal has no public way to list its receivers: ours are taken off for the question.
    own = [entry for entry in _OWN_RECEIVERS if entry[0] is signal and entry[2] is model]
    for _, _, sender, uid in own:
        signal.disconnect(sender=sender, dispatch_uid=uid)
    try:
        return signal.has_listeners(model)
    finally:
        for _, receiver, sender, uid in own:
            signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
