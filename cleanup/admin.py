import logging

from celery import current_app
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from jobs.admin import method_filter

from . import charts, services
from .models import PendingFileDeletion, PurgeRun, ReconcileRun, Retention, StorageBinding
from .report import format_duration, local_time, retention_facts

logger = logging.getLogger(__name__)

admin.site.site_header = admin.site.site_title = "fmr retention"
admin.site.index_title = "The 24-hour promise: jobs, their purge and its schedule"
# "View site" opens the Retention page: this project has no public site of its own.
admin.site.site_url = reverse_lazy("admin:cleanup_retention_changelist")
# The app list beside every page would cost the runs list a third of a laptop's width.
admin.site.enable_nav_sidebar = False

# The runs list's status colours: amber when a person should look, red when the purge failed.
_S = PurgeRun.Status
SEVERITY = {_S.SUCCEEDED: "#1b7a3a", _S.RUNNING: "#1f5fa8", _S.DRY_RUN: "#5f6b7a"}
SEVERITY |= {_S.HANDED_OVER: "#5f6b7a", _S.FILES_PENDING: "#a15c00", _S.INTERRUPTED: "#a15c00"}
SEVERITY |= {_S.FAILED: "#b3261e", _S.ABANDONED: "#b3261e"}


class ScheduleForm(PeriodicTaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # django-celery-beat leaves "Task (registered)" blank for a saved row: show its task.
        self.initial.setdefault("regtask", self.instance.task)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin, form=ScheduleForm)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and bookkeeping: staff look, nobody edits or deletes from here."""

    def has_add_permission(self, request, obj=None):
        return False

    has_change_permission = has_delete_permission = has_add_permission


class RunAdmin(ReadOnlyAdmin):
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-pk"]

    @admin.display(description="error")
    def short_error(self, run):
        # An endpoint URL is one long word: let it break rather than widen the table.
        short = Truncator(run.error).chars(60)
        return format_html('<span style="overflow-wrap:anywhere">{}</span>', short) if short else ""


@admin.register(PurgeRun)
class PurgeRunAdmin(RunAdmin):
    list_display = ["id", "started_at", "took", "trigger", "coloured_status", "fan_out"]
    list_display += ["jobs_deleted", "rows_total", "files_deleted", "files_pending", "short_error"]
    list_filter = ["status", "trigger", "dry_run"]
    readonly_fields = ["took", "rows_table", "fan_out_runs", "oldest_expired_at_start"]
    # One number per run keeps each row one line; the run's page has the table per model.
    rows_total = admin.display(description="rows")(lambda self, run: run.rows_total)

    def get_fieldsets(self, request, obj=None):
        # Only a run's own page asks (nobody may add one): its sections follow what it did.
        done = ("What it deleted", ["jobs_deleted", "rows_table", "files_deleted", "files_pending"])
        if obj.error.startswith("Never started"):
            done = ("", [])  # refused before its first row: the error says why, nothing to count
        elif obj.dry_run:
            title = "Dry run: what it would have deleted (nothing was deleted)"
            done = (title, ["would_delete_jobs", "rows_table", "would_delete_files"])
        when = ["status", "trigger", "requested_by", "started_at", "finished_at", "took"]
        sets = [
            (None, [*when, "heartbeat_at", "task_id"]),
            ("Fan-out", ["fan_out_runs"] if obj.fan_out_size > 1 else []),
            done,
            ("How", ["method", "cutoff", "batch_size", "limit", "batches"]),
            ("Backlog", ["expired_at_start", "oldest_expired_at_start", "pending_files_at_end"]),
            ("Error", ["error"]),
        ]
        return [(title, {"fields": fields}) for title, fields in sets if fields]

    def get_queryset(self, request):
        # The runs of one purge share a group: a fan-out's runs side by side, and successors.
        same = PurgeRun.objects.filter(group=OuterRef("group")).values("group")
        size = Subquery(same.annotate(n=Count("pk")).values("n"))
        return super().get_queryset(request).annotate(fan_out_size=size)

    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.purge_now_view))
        return [path("purge-now/", view, name="cleanup_purgerun_purge_now"), *super().get_urls()]

    def purge_now_view(self, request):
        """Enqueue the purge for a worker; the request itself deletes nothing."""
        if not request.user.has_perm("cleanup.run_purge"):
            raise PermissionDenied
        # Who asked goes into the run record (and the destruction ledger).
        asked = {"trigger": PurgeRun.Trigger.ADMIN, "requested_by": request.user.get_username()}
        retry = {"max_retries": 2, "interval_start": 0, "interval_step": 1}
        try:
            # Sent by name: the admin imports no task module (an entry point calls no other).
            sent = current_app.send_task("delete_expired_jobs", kwargs=asked, retry_policy=retry)
        except Exception as exc:  # noqa: BLE001 - any broker failure is reported, not raised
            logger.warning("purge.enqueue_failed", extra={"error": type(exc).__name__})
            said = f"Could not enqueue the purge ({type(exc).__name__}: {exc}): is the broker up?"
            self.message_user(request, said, messages.ERROR)
        else:
            said = f"Enqueued delete_expired_jobs (task {sent.id}): listed here as “Django admin”."
            self.message_user(request, said, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:cleanup_purgerun_changelist"))

    @admin.display(description="status", ordering="status")
    def coloured_status(self, run):
        # Only dry runs are labelled as such: a dry run's own status, or "(dry run)" after another.
        label = " (dry run)" if run.dry_run and run.status != PurgeRun.Status.DRY_RUN else ""
        colour = SEVERITY.get(run.status, "inherit")
        return format_html('<strong style="color:{}">{}</strong>{}', colour, run.status, label)

    @admin.display(description="fan-out", empty_value="")
    def fan_out(self, run):
        return f"{run.fan_out_size} runs" if run.fan_out_size > 1 else ""

    @admin.display(description="took")
    def took(self, run):
        return format_duration(run.duration.total_seconds()) if run.duration else "-"

    @admin.display(description="most overdue at start")
    def oldest_expired_at_start(self, run):
        seconds = run.oldest_expired_seconds_at_start
        return "-" if seconds is None else f"{format_duration(seconds)} past its expiry"

    @admin.display(description="rows per model")
    def rows_table(self, run):
        # The job first, then its dependents in cascade order.
        rows = (run.would_delete_rows if run.dry_run else run.rows_deleted) or {}
        ordered = sorted(rows.items(), key=lambda item: item[0] != "jobs.Job")
        context = {"rows": ordered, "total": sum(rows.values())}
        return render_to_string("admin/cleanup/purgerun/rows_table.html", context)

    @admin.display(description="runs")
    def fan_out_runs(self, run):
        runs = PurgeRun.objects.filter(group=run.group).order_by("started_at", "pk")
        return render_to_string("admin/cleanup/purgerun/fan_out_runs.html", {"runs": runs})


# Each choice: its label, and the PendingFileDeletion queryset method that selects it.
STATES = {"pending": ("pending", "not_stuck"), "stuck": ("stuck", "stuck")}
STATES |= {"refused": ("refused", "refused"), "resolved": ("resolved", "resolved")}
REFUSED = {"yes": ("Never sent to storage", "refused"), "no": ("Waiting for storage", "waiting")}


@admin.register(PendingFileDeletion)
class PendingFileDeletionAdmin(ReadOnlyAdmin):
    list_display = ["name", "state", "created_at", "attempts", "next_attempt", "last_error"]
    list_display += ["refused_reason"]
    list_filter = [method_filter("state", STATES), method_filter("refused", REFUSED)]
    ordering = ["next_attempt_at", "pk"]
    actions = ["retry_now", "mark_resolved"]

    def has_retry_permission(self, request):
        return request.user.has_perm("cleanup.retry_pending")

    def get_queryset(self, request):
        return super().get_queryset(request).with_stuck()

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, pending):
        # A due name goes with the next purge's sweep: a time in the past would read as missed.
        if pending.resolved_at is not None or pending.refused_reason:
            return "-"
        if pending.next_attempt_at <= timezone.now():
            return "with the next purge"
        return local_time(pending.next_attempt_at)

    @admin.display(description="state")
    def state(self, pending):
        if pending.resolved_at is not None:
            return f"resolved by {pending.resolved_by or '?'}, {pending.resolved_at:%Y-%m-%d %H:%M}"
        if pending.refused_reason:
            return "REFUSED"
        return "STUCK" if pending.is_stuck else "pending"

    @admin.action(description="Retry now: delete the selected files", permissions=["retry"])
    def retry_now(self, request, queryset):
        try:
            outcome = services.retry_pending_files(ids=list(queryset.values_list("pk", flat=True)))
        except services.PurgeNotPossible as exc:
            self.message_user(request, f"Nothing was deleted: {exc}", messages.ERROR)
            return
        refused = "{} name(s) refused, never sent to storage: {}."
        said = [
            (outcome.deleted, messages.SUCCESS, "Deleted {} file(s) from storage.", []),
            (outcome.failed, messages.WARNING, "{} file(s) still pending: {}", outcome.errors),
            (outcome.refused, messages.WARNING, refused, outcome.refused_reasons),
        ]
        nothing = (0, messages.INFO, "Nothing was left to delete.", [])
        for count, level, text, reasons in [row for row in said if row[0]] or [nothing]:
            self.message_user(request, text.format(count, "; ".join(reasons[:3])), level)

    @admin.action(description="Mark resolved: dealt with by a person", permissions=["retry"])
    def mark_resolved(self, request, queryset):
        chosen = list(queryset.values_list("pk", flat=True))
        resolved = services.resolve_stuck_files(ids=chosen, by=request.user.get_username())
        if resolved:
            logger.info("pending.resolved", extra={"files": resolved})
            said = f"Resolved {resolved} file(s): kept as a record, no longer tried or alerted on."
            self.message_user(request, said, messages.SUCCESS)
        if len(chosen) > resolved:
            said = f"{len(chosen) - resolved} file(s) neither stuck nor refused: left as they were."
            self.message_user(request, said, messages.WARNING)


@admin.register(ReconcileRun)
class ReconcileRunAdmin(RunAdmin):
    list_display = ["id", "started_at", "finished_at", "trigger", "status", "delete", "forced"]
    list_display += ["scanned", "young", "held", "orphans", "deleted", "failed", "short_error"]
    list_filter = ["status", "trigger", "delete", "forced"]


# Changed only by `manage.py bind_storage --rebind` (README, "Safety").
binding_columns = ["kind", "bucket", "location", "bound_at", "bound_by", "previous"]
admin.site.register(StorageBinding, ReadOnlyAdmin, list_display=binding_columns)


@admin.register(Retention)
class RetentionAdmin(ReadOnlyAdmin):
    """Cleanup → Retention: is the promise holding, and seven days of the purge, for staff."""

    def has_view_permission(self, request, obj=None):
        # Counts only, no personal data: every staff member may look, as at /cleanup/status/.
        return request.user.is_active and request.user.is_staff

    has_module_permission = has_view_permission

    def get_urls(self):
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="cleanup_retention_changelist")]

    def changelist_view(self, request, extra_context=None):
        status = services.purge_status()
        schedule = services.purge_schedule(now=status.checked_at)
        history = services.retention_history(now=status.checked_at)
        schedule_row = PeriodicTask.objects.filter(name="delete-expired-jobs")
        span = {"since": history["since"], "until": history["until"]}
        backlog, oldest = ([(at, b[i] or 0) for at, *b in history["backlog"]] for i in (0, 1))
        durations = {"label": format_duration, "ceiling": charts.nice_duration_ceiling}
        context = {
            **self.admin_site.each_context(request),
            "title": "Retention",
            "opts": self.opts,
            "verdict": services.retention_verdict(status=status, schedule=schedule),
            "schedule": schedule,
            "schedule_pk": schedule_row.values_list("pk", flat=True).first(),
            "facts": retention_facts(status),
            # The page's four plots over one span (their texts are in its template).
            "plots": {
                "purged": charts.time_series(history["purged_per_hour"], **span, step=3600),
                "backlog": charts.time_series(backlog, **span),
                "oldest": charts.time_series(oldest, **span, **durations),
                "pending": charts.time_series(history["pending"], **span),
            },
            "checked_at": status.checked_at,
            "since": history["since"],
        }
        return TemplateResponse(request, "admin/cleanup/retention.html", context)
