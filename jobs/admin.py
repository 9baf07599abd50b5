import logging

from django.contrib import admin, messages
from django.utils import timezone

from .models import (
    Job,
    JobFile,
    Payment,
    PaymentFailure,
    PhoneVerificationAttempt,
    Report,
    SmsLog,
)


logger = logging.getLogger("cleanup")


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("live", "Live")]

    def queryset(self, request, queryset):
        if self.value() == "expired":
            return queryset.expired(timezone.now())
        if self.value() == "live":
            return queryset.live(timezone.now())
        return queryset


class JobFileInline(admin.TabularInline):
    model = JobFile
    extra = 0
    fields = ["kind", "file", "content_type", "size", "created_at"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "created_at", "expires_at", "is_expired_now"]
    list_filter = [ExpiryFilter, "status"]
    readonly_fields = ["id", "created_at", "expires_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [JobFileInline]
    actions = ["purge_expired_now"]

    @admin.action(
        description="Purge expired jobs now (all expired jobs, not only the selected ones)",
        permissions=["view"],
    )
    def purge_expired_now(self, request, queryset):
        # The purge runs on a worker; the request only enqueues it and returns.
        from cleanup.models import PurgeRun
        from cleanup.tasks import delete_expired_jobs

        try:
            sent = delete_expired_jobs.apply_async(
                kwargs={"trigger": PurgeRun.Trigger.ADMIN},
                retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 1},
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure is reported, not raised
            logger.warning("purge.enqueue failed error=%s", type(exc).__name__)
            self.message_user(
                request,
                f"Could not enqueue the purge ({type(exc).__name__}: {exc}). "
                "Is the Celery broker reachable?",
                messages.ERROR,
            )
            return
        self.message_user(
            request,
            f"Enqueued delete_expired_jobs (task {sent.id}): a Celery worker will purge every "
            "expired job. Its run appears under Cleanup → Purge runs with trigger "
            "“Django admin”.",
            messages.SUCCESS,
        )

    @admin.display(boolean=True, description="expired")
    def is_expired_now(self, job):
        return job.is_expired()


for model in (Payment, PaymentFailure, SmsLog, PhoneVerificationAttempt, Report):
    admin.site.register(model, list_display=["id", "job"], raw_id_fields=["job"])
