from django.contrib import admin
from django.utils import timezone

from .models import Job, JobFile, Payment, PaymentFailure, PhoneVerificationAttempt, Report, SmsLog


def method_filter(name: str, choices: dict) -> type:
    """A list filter `?name=value` for choices {value: (label, queryset method that selects it)}."""

    class MethodFilter(admin.SimpleListFilter):
        title = parameter_name = name

        def lookups(self, request, model_admin):
            return [(value, label) for value, (label, _) in choices.items()]

        def queryset(self, request, queryset):
            # Only a listed value names a method (None: Django keeps the list unfiltered).
            if self.value() in choices:
                return getattr(queryset, choices[self.value()][1])()

    return MethodFilter


class JobFileInline(admin.TabularInline):
    model = JobFile
    extra = 0
    fields = ["kind", "file", "content_type", "size", "created_at"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "created_at", "expires_at", "is_expired_now"]
    expiry = {"expired": ("Expired", "expired"), "live": ("Live", "live")}
    list_filter = [method_filter("expiry", expiry), "status"]
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
