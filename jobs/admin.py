from django.contrib import admin
from django.utils import timezone

from .models import Job, JobFile, Payment, PaymentFailure, PhoneVerificationAttempt, Report, SmsLog


class ExpiryFilter(admin.SimpleListFilter):
    title = parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("live", "Live")]

    def queryset(self, request, queryset):  # JobQuerySet.expired() or .live()
        chosen = self.value() in {"expired", "live"}
        return getattr(queryset, self.value())() if chosen else queryset


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

    def get_queryset(self, request):
        return super().get_queryset(request).with_expired_flag(timezone.now())

    @admin.display(boolean=True, description="expired", ordering="expires_at")
    def is_expired_now(self, job):
        return job.is_expired


for model in (Payment, PaymentFailure, SmsLog, PhoneVerificationAttempt, Report):
    admin.site.register(model, list_display=["id", "job"], raw_id_fields=["job"])
