"""The purge's cascade is an explicit delete plan, derived from public model metadata and checked.

The plan-builder is tried on small models of a registry of their own (isolate_apps), so the real
Job cascade never sees them; the check and the purge on the real models.
"""

import pytest
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.db.models.signals import post_delete
from django.test import override_settings
from django.test.utils import isolate_apps

from cleanup.checks import delete_plan_check
from cleanup.deletion import GENERIC, NOT_CASCADE, SHAPE, UNDECLARED_FILES, build_plan
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job, JobFile, Report
from tests.helpers import FULL_JOB_ROWS, expired_job, rows_of


class Meta:
    app_label = "cleanup"


def model(name, **fields):
    return type(name, (models.Model,), {"__module__": __name__, "Meta": Meta, **fields})


def fk(to, on_delete=models.CASCADE, **kwargs):
    return models.ForeignKey(to, on_delete=on_delete, related_name="+", **kwargs)


@isolate_apps("cleanup")
def test_the_plan_follows_every_cascade_children_first_one_statement_per_model():
    root = model("Root")
    box = model("Box", root=models.OneToOneField(root, on_delete=models.CASCADE))
    tag = model("Tag", boxes=models.ManyToManyField(box))
    # Reached twice: under the root and under a box. One statement takes both ways.
    item = model("Item", box=models.ForeignKey(box, models.CASCADE), root=fk(root))

    plan = build_plan(root)

    assert plan.problems == ()
    order = [step.model for step in plan.steps]
    through = tag._meta.get_field("boxes").remote_field.through
    assert set(order) == {root, box, item, through} and order[-1] is root
    assert order.index(item) < order.index(box) and order.index(through) < order.index(box)
    steps = {step.model: step for step in plan.steps}
    assert " OR " in steps[item].sql and plan.paths[item] == ("box__root__", "root__")
    assert tag not in order  # a many-to-many deletes the links, never the other side


@isolate_apps("cleanup")
def test_every_relation_the_plan_cannot_honour_is_named():
    root = model("Root")
    for rule in (models.SET_NULL, models.PROTECT, models.RESTRICT, models.DO_NOTHING):
        model(f"By{rule.__name__}", root=fk(root, rule, null=True))
    model("BySetDefault", root=fk(root, models.SET_DEFAULT, default=1))
    note = model(
        "Note",
        root=fk(root),
        content_type=fk(ContentType),
        object_id=models.PositiveIntegerField(),
        target=GenericForeignKey(),
    )
    root.add_to_class("notes", GenericRelation(note))
    model("Upload", root=fk(root), file=models.FileField())
    model("Node", root=fk(root), parent=models.ForeignKey("self", models.CASCADE, null=True))
    base = model("Base")
    type("Heir", (base,), {"__module__": __name__, "Meta": Meta, "root": fk(root)})

    problems = build_plan(root).problems

    found = {kind: sorted(what for k, what in problems if k == kind) for kind, _ in problems}
    assert found[NOT_CASCADE] == [
        "cleanup.ByDO_NOTHING.root -> cleanup.Root (on_delete=DO_NOTHING)",
        "cleanup.ByPROTECT.root -> cleanup.Root (on_delete=PROTECT)",
        "cleanup.ByRESTRICT.root -> cleanup.Root (on_delete=RESTRICT)",
        "cleanup.BySET_NULL.root -> cleanup.Root (on_delete=SET_NULL)",
        "cleanup.BySetDefault.root -> cleanup.Root (on_delete=SET_DEFAULT)",
    ]
    # Notes on a root would outlive it; a note's own generic key goes with its row.
    assert found[GENERIC] == ["cleanup.Root.notes (GenericRelation)"]
    assert found[UNDECLARED_FILES] == ["the FileField(s) of cleanup.Upload"]
    assert found[SHAPE] == [
        "cleanup.Heir.root -> cleanup.Root (a model with a multi-table parent)",
        "cleanup.Node.parent -> cleanup.Node (a cycle)",
    ]


@isolate_apps("cleanup")
def test_a_declared_file_model_returns_its_names_from_its_delete():
    root = model("Root")
    upload = model("Upload", root=fk(root), file=models.FileField(), thumb=models.FileField())

    plan = build_plan(root, (upload,))

    assert plan.problems == ()
    assert plan.steps[0].sql.endswith('RETURNING "file", "thumb"')


def test_the_real_cascade_passes_the_check_and_our_own_receiver_is_not_counted():
    assert post_delete.has_listeners(JobFile)  # cleanup/receivers.py's, for deletes elsewhere
    assert delete_plan_check() == []
    assert post_delete.has_listeners(JobFile)  # the check put it back


def test_a_file_model_in_the_cascade_that_is_not_declared_is_an_error_naming_it():
    with override_settings(CLEANUP_FILE_MODELS=[]):
        messages = delete_plan_check()
    assert [m.id for m in messages] == ["cleanup.E032"]
    assert "jobs.JobFile" in messages[0].msg and messages[0].is_serious()


def test_another_delete_receiver_in_the_cascade_is_a_warning_naming_it():
    def receiver(**kwargs):
        pass

    post_delete.connect(receiver, sender=Report, dispatch_uid="test_plan.report")
    try:
        messages = delete_plan_check()
    finally:
        post_delete.disconnect(sender=Report, dispatch_uid="test_plan.report")
    assert [(m.id, m.is_serious()) for m in messages] == [("cleanup.W030", False)]
    assert messages[0].msg.startswith("jobs.Report (post_delete) has delete receivers")


@pytest.mark.django_db
def test_a_purge_refuses_a_plan_it_cannot_honour_before_deleting_anything():
    job = expired_job()
    with override_settings(CLEANUP_FILE_MODELS=[]):
        with pytest.raises(ImproperlyConfigured, match="jobs.JobFile"):
            purge_expired_jobs()
    assert rows_of(job.pk) == FULL_JOB_ROWS and not PendingFileDeletion.objects.exists()
    assert PurgeRun.objects.get().status == PurgeRun.Status.FAILED
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_plan_with_two_ways_down_and_a_many_to_many_deletes_exactly_the_batch():
    with isolate_apps("cleanup"):
        root = model("Root")
        box = model("Box", root=models.OneToOneField(root, on_delete=models.CASCADE))
        tag = model("Tag", boxes=models.ManyToManyField(box))
        item = model("Item", box=models.ForeignKey(box, models.CASCADE), root=fk(root))
        with connection.schema_editor() as editor:  # PostgreSQL: rolled back with the test
            for table in (root, box, tag, item):
                editor.create_model(table)
        gone, kept = root.objects.create(), root.objects.create()
        box_gone, box_kept = box.objects.create(root=gone), box.objects.create(root=kept)
        tag.objects.create().boxes.set([box_gone, box_kept])
        item.objects.create(box=box_gone, root=kept)  # goes with its box
        item.objects.create(box=box_kept, root=gone)  # goes with its root
        item.objects.create(box=box_kept, root=kept)

        cascade = build_plan(root).delete([gone.pk])

        through = tag.boxes.through
        assert cascade.per_model == {
            "cleanup.Item": 2,
            "cleanup.Tag_boxes": 1,
            "cleanup.Box": 1,
            "cleanup.Root": 1,
        }
        assert list(root.objects.all()) == [kept] and list(box.objects.all()) == [box_kept]
        assert item.objects.get().box == box_kept and tag.objects.count() == 1
        assert list(through.objects.values_list("box", flat=True)) == [box_kept.pk]
