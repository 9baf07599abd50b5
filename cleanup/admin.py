from django.contrib import admin, messages
from django.utils.text import Truncator

from .models import PendingFileDeletion, PurgeRun
from .services import retry_pending_files


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
        "id", "started_at", "finished_at", "trigger", "status", "dry_run", "jobs_deleted",
        "rows_per_model", "files_deleted", "files_pending", "short_error",
    ]
    list_filter = ["status", "trigger", "dry_run"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-pk"]

    @admin.display(description="rows per model")
    def rows_per_model(self, run):
        rows = {label.split(".")[-1]: n for label, n in (run.rows_deleted or {}).items() if n}
        return ", ".join(f"{name} {n}" for name, n in rows.items()) or "-"

    @admin.display(description="error")
    def short_error(self, run):
        return Truncator(run.error).chars(80) or "-"


@admin.register(PendingFileDeletion)
class PendingFileDeletionAdmin(ReadOnlyAdmin):
    list_display = ["name", "created_at", "attempts", "next_attempt_at", "last_error"]
    ordering = ["next_attempt_at", "pk"]
    actions = ["retry_now"]

    @admin.action(
        description="Retry now: delete the selected files from storage", permissions=["view"]
    )
    def retry_now(self, request, queryset):
        outcome = retry_pending_files(ids=list(queryset.values_list("pk", flat=True)))
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
        if not outcome.deleted and not outcome.failed:
            self.message_user(request, "Nothing was left to delete.", messages.INFO)
