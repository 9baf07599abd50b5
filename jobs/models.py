"""A user's job and everything attached to it, which all expires together (Job.expires_at)."""

import re
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from django.utils.deconstruct import deconstructible

# Every job's files live under this prefix, so storage can be reconciled against the database.
UPLOAD_PREFIX = "jobs"


@deconstructible
@dataclass
class UploadName:
    """The one upload-name rule: an allow-list every S3 server and file system reads as one key
    (any other name one of them reads differently: an expired row could delete a live file)."""

    prefix: str

    def problem(self, name) -> str:
        """Why `name` breaks the rule, in fixed words (never the name); "" when it is allowed."""
        if not isinstance(name, str) or not name.startswith(self.prefix + "/"):
            return f"not under the upload prefix {self.prefix}/"
        if re.search(r"[^A-Za-z0-9_./-]", name):
            return "a character outside the allow-list (ASCII letters, digits, - _ . /)"
        if {"", ".", ".."} & set(name.split("/")):
            return "an empty, '.' or '..' path segment"
        if len(name) > 1024:  # S3's key limit; ASCII by now: one byte per character
            return "longer than 1,024 bytes"
        return ""

    def __call__(self, value):
        if problem := self.problem(getattr(value, "name", value)):
            raise ValidationError(f"A stored file name is refused: {problem}.", code="unsafe_name")


validate_upload_name = UploadName(UPLOAD_PREFIX)


class JobQuerySet(models.QuerySet):
    def expired(self, now=None):
        return self.filter(self.is_expired_at(now))

    def live(self, now=None):
        return self.exclude(self.is_expired_at(now))

    def with_expired_flag(self, now=None):  # computed by the database from the same definition
        return self.annotate(is_expired=self.is_expired_at(now))

    @staticmethod
    def is_expired_at(now) -> models.Q:  # strictly past expires_at: a job is never purged early
        return models.Q(expires_at__lt=now or timezone.now())

    def bulk_create(self, objs, *args, **kwargs):  # it skips save(), which fills in expiry
        return super().bulk_create([job.fill_expiry() for job in objs], *args, **kwargs)


class Row(models.Model):
    shown = ""  # the field whose value __str__ adds in brackets

    class Meta:
        abstract = True

    def __str__(self):
        extra = f" ({getattr(self, self.shown)})" if self.shown else ""
        return f"{type(self).__name__} {self.pk}{extra}"


class Job(Row):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Photo uploaded"
        GENERATING = "generating", "Generating AI images"
        AWAITING_VERIFICATION = "awaiting_verification", "Awaiting phone verification"
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PAID = "paid", "Paid"
        REPORT_READY = "report_ready", "Report ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.UPLOADED)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(db_index=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def save(self, *args, **kwargs):
        self.fill_expiry()
        super().save(*args, **kwargs)

    def fill_expiry(self):
        self.created_at = self.created_at or timezone.now()
        self.expires_at = self.expires_at or self.created_at + settings.JOB_TTL
        return self


class Payment(Row):
    class Provider(models.TextChoices):
        TOSS = "toss", "Toss Payments"
        KAKAOPAY = "kakaopay", "KakaoPay"
        NAVERPAY = "naverpay", "Naver Pay"
        CARD = "card", "Card"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="payment")
    provider = models.CharField(max_length=32, choices=Provider.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    amount = models.PositiveIntegerField(help_text="Amount in KRW (no minor unit).")
    currency = models.CharField(max_length=3, default="KRW")
    provider_transaction_id = models.CharField(max_length=128, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    shown = "status"


class PaymentFailure(Row):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="payment_failures")
    provider = models.CharField(max_length=32, choices=Payment.Provider.choices)
    amount = models.PositiveIntegerField()
    code = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    shown = "code"


def job_file_upload_to(instance, filename):
    # The user's file name is personal data: keep only its extension, letters and digits only.
    suffix = re.sub(r"[^a-z0-9]", "", PurePosixPath(filename).suffix.lower())[:9]
    if instance.kind not in JobFile.Kind.values:
        raise ValueError("a job file's kind must be one of JobFile.Kind")
    job = uuid.UUID(str(instance.job_id))  # a job id, nothing that could carry a path
    name = f"{UPLOAD_PREFIX}/{job}/{instance.kind}-{uuid.uuid4().hex}.{suffix}".rstrip(".")
    validate_upload_name(name)
    return name


class FileExpired(PermissionDenied):
    """A link was asked for a file whose job has expired (the file is gone or about to be)."""


class JobFieldFile(FieldFile):
    """A job file's link dies with its job: it lasts at most the seconds the job has left."""

    @property
    def url(self):
        if not self:
            return super().url  # Django's error for a field with no file
        expires_at = self.instance.job.expires_at
        left = (expires_at - timezone.now()).total_seconds()
        if left < 1:  # a link lasts whole seconds, at least one
            when = timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M:%S %Z")
            state = "expired" if left < 0 else "expires"
            raise FileExpired(f"this file's job {state} at {when}: no link is handed out")
        if (lifetime := getattr(self.storage, "querystring_expire", None)) is None:  # not S3
            return super().url
        return self.storage.url(self.name, expire=min(lifetime, int(left)))


class JobFileField(models.FileField):
    attr_class = JobFieldFile

    def deconstruct(self):
        # Only the links it hands out differ; to migrations (and the column) it is a FileField.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.FileField", args, kwargs


class JobFile(Row):
    class Kind(models.TextChoices):
        ORIGINAL = "original", "Original photo"
        AI_GENERATED = "ai_generated", "AI generated"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Indexed: storage deletes and the orphan reconciler look files up by name.
    file = JobFileField(
        upload_to=job_file_upload_to,
        max_length=512,
        db_index=True,
        validators=[validate_upload_name],
    )
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    shown = "kind"


class SmsLog(Row):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="sms_logs")
    phone_number = models.CharField(max_length=20)
    message = models.TextField()
    provider = models.CharField(max_length=32, default="aligo")
    provider_message_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    sent_at = models.DateTimeField(default=timezone.now)
    shown = "status"


class PhoneVerificationAttempt(Row):
    job = models.ForeignKey(Job, models.CASCADE, related_name="phone_verification_attempts")
    phone_number = models.CharField(max_length=20)
    code = models.CharField(max_length=8)
    verified = models.BooleanField(default=False)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)


class Report(Row):
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="report")
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)


class ReportKnowledge(Row):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="knowledge")
    position = models.PositiveSmallIntegerField(default=0)
    topic = models.CharField(max_length=100)
    content = models.TextField()
    source = models.CharField(max_length=200, blank=True)
    shown = "topic"

    class Meta:
        ordering = ["position"]
