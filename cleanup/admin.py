from django.contrib import admin

from .models import PendingFileDeletion, PurgeRun


@admin.register(PurgeRun)
class PurgeRunAdmin(admin.ModelAdmin):
    list_display = [
        "id", "started_at", "finished_at", "trigger", "status", "dry_run", "jobs_deleted",
        "files_deleted", "files_pending",
    ]
    list_filter = ["status", "trigger", "dry_run"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PendingFileDeletion)
class PendingFileDeletionAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "attempts", "next_attempt_at", "last_error"]

    def has_add_permission(self, request):
        return False
