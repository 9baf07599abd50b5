import logging

from celery import current_app
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.text import Truncator

from .models import PendingFileDeletion, PurgeRun, ReconcileRun, StorageBinding
from .services import PurgeNotPossible, retry_pending_files

logger = logging.getLogger(__name__)

# The Celery task a worker runs for "Purge expired jobs now"; sent by name, so the admin needs
# no import of the task module (an entry point does not call another).
PURGE_TASK = "delete_expired_jobs"


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and bookkeeping: staff look, nobody edits or deletes from here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PurgeRun)
class PurgeRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "dry_run",
        "jobs_deleted",
        "rows_per_model",
        "files_deleted",
        "files_pending",
        "files_refused",
        "short_error",
    ]
    list_filter = ["status", "trigger", "dry_run"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-pk"]
    change_list_template = "admin/cleanup/purgerun/change_list.html"

    def get_urls(self):
        purge_now = self.admin_site.admin_view(self.purge_now_view)
        return [
            path("purge-now/", purge_now, name="cleanup_purgerun_purge_now"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_run_purge": _can_run_purge(request)}
        return super().changelist_view(request, extra_context)

    def purge_now_view(self, request):
        """Enqueue the purge for a worker; the request itself deletes nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not _can_run_purge(request):
            raise PermissionDenied
        try:
            sent = current_app.send_task(
                PURGE_TASK,
                kwargs={"trigger": PurgeRun.Trigger.ADMIN},
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 1},
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure is reported, not raised
            logger.warning("purge.enqueue_failed", extra={"error": type(exc).__name__})
            self.message_user(
                request,
                f"Could not enqueue the purge ({type(exc).__name__}: {exc}). "
                "Is the Celery broker reachable?",
                messages.ERROR,
            )
        else:
            self.message_user(
                request,
                f"Enqueued {PURGE_TASK} (task {sent.id}): a Celery worker will purge every "
                "expired job. Its run appears in this list with trigger “Django admin”.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:cleanup_purgerun_changelist"))

    @admin.display(description="rows per model")
    def rows_per_model(self, run):
        rows = {label.split(".")[-1]: n for label, n in (run.rows_deleted or {}).items() if n}
        return ", ".join(f"{name} {n}" for name, n in rows.items()) or "-"

    @admin.display(description="error")
    def short_error(self, run):
        return Truncator(run.error).chars(80) or "-"


class RefusedFilter(admin.SimpleListFilter):
    title = "refused"
    parameter_name = "refused"

    def lookups(self, request, model_admin):
        return [("yes", "Refused (never sent to storage)"), ("no", "Waiting for storage")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.refused()
        if self.value() == "no":
            return queryset.waiting()
        return queryset


@admin.register(PendingFileDeletion)
class PendingFileDeletionAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "created_at",
        "attempts",
        "next_attempt_at",
        "last_error",
        "refused_reason",
    ]
    list_filter = [RefusedFilter]
    ordering = ["next_attempt_at", "pk"]
    actions = ["retry_now"]

    def has_retry_permission(self, request):
        return request.user.has_perm("cleanup.retry_pending")

    @admin.action(
        description="Retry now: delete the selected files from storage", permissions=["retry"]
    )
    def retry_now(self, request, queryset):
        try:
            outcome = retry_pending_files(ids=list(queryset.values_list("pk", flat=True)))
        except PurgeNotPossible as exc:
            self.message_user(request, f"Nothing was deleted: {exc}", messages.ERROR)
            return
        if outcome.deleted:
            self.message_user(
                request, f"Deleted {outcome.deleted} file(s) from storage.", messages.SUCCESS
            )
        if outcome.failed:
            self.message_user(
                request,
                f"{outcome.failed} file(s) still pending: {'; '.join(outcome.errors[:3])}",
                messages.WARNING,
            )
        if outcome.refused:
            self.message_user(
                request,
                f"{outcome.refused} name(s) refused, never sent to storage: "
                f"{'; '.join(outcome.refused_reasons[:3])}.",
                messages.WARNING,
            )
        if not outcome.deleted and not outcome.failed and not outcome.refused:
            self.message_user(request, "Nothing was left to delete.", messages.INFO)


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "delete",
        "forced",
        "scanned",
        "young",
        "held",
        "orphans",
        "deleted",
        "failed",
        "short_error",
    ]
    list_filter = ["status", "trigger", "delete", "forced"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-pk"]

    @admin.display(description="error")
    def short_error(self, run):
        return Truncator(run.error).chars(80) or "-"


@admin.register(StorageBinding)
class StorageBindingAdmin(ReadOnlyAdmin):
    # Changed only by `manage.py bind_storage --rebind` (README, "Safety").
    list_display = ["kind", "bucket", "location", "bound_at", "bound_by", "previous"]


def _can_run_purge(request) -> bool:
    return request.user.has_perm("cleanup.run_purge")
