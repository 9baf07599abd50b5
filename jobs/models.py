"""A user's job and everything attached to it. All of it expires together (see Job.expires_at)."""

import re
import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone

# Every job's files live under this prefix, so storage can be reconciled against the database.
UPLOAD_PREFIX = "jobs"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_upload_name(value):
    """A stored file name must be the plain key of an object under UPLOAD_PREFIX/.

    Storage resolves names its own way ('//' and '.' collapse, '..' climbs, a leading '/' or a
    backslash is dropped or turned into '/' on S3), so any other spelling could name another
    row's file, or a key outside the prefix. Such names are refused here, by model validation;
    the purge never sends one to storage either.
    """
    name = getattr(value, "name", value) or ""
    problem = ""
    segments = name.split("/")
    if _CONTROL.search(name):
        problem = "contains a control character"
    elif "\\" in name:
        problem = "contains a backslash"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif "" in segments:
        problem = "has an empty path segment"
    elif "." in segments or ".." in segments:
        problem = "has a '.' or '..' path segment"
    elif len(segments) < 2 or segments[0] != UPLOAD_PREFIX:
        problem = f"is not under {UPLOAD_PREFIX}/"
    if problem:
        raise ValidationError(
            "A stored file name %(problem)s.", code="unsafe_name", params={"problem": problem}
        )


def expiry_for(created_at):
    return created_at + settings.JOB_TTL


def is_expired_at(now) -> models.Q:
    # The one definition of "expired": strictly past expires_at. A job whose expiry is exactly
    # now is still live, so the promise is never broken early.
    return models.Q(expires_at__lt=now)


class JobQuerySet(models.QuerySet):
    def expired(self, now=None):
        return self.filter(is_expired_at(now or timezone.now()))

    def live(self, now=None):
        return self.exclude(is_expired_at(now or timezone.now()))

    def with_expired_flag(self, now=None):
        """Each job with `is_expired`, computed by the database from the same definition."""
        return self.annotate(
            is_expired=models.ExpressionWrapper(
                is_expired_at(now or timezone.now()), output_field=models.BooleanField()
            )
        )

    def bulk_create(self, objs, *args, **kwargs):
        # bulk_create skips save(), which is where expiry is otherwise filled in.
        for job in objs:
            job.fill_expiry()
        return super().bulk_create(objs, *args, **kwargs)


class Job(models.Model):
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

    def __str__(self):
        return f"Job {self.pk}"

    def save(self, *args, **kwargs):
        self.fill_expiry()
        super().save(*args, **kwargs)

    def fill_expiry(self):
        if self.created_at is None:
            self.created_at = timezone.now()
        if self.expires_at is None:
            self.expires_at = expiry_for(self.created_at)


class Payment(models.Model):
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

    def __str__(self):
        return f"Payment {self.pk} ({self.status})"


class PaymentFailure(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="payment_failures")
    provider = models.CharField(max_length=32, choices=Payment.Provider.choices)
    amount = models.PositiveIntegerField()
    code = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"PaymentFailure {self.pk} ({self.code})"


def job_file_upload_to(instance, filename):
    # The user's file name is personal data: keep only its extension, letters and digits only.
    suffix = re.sub(r"[^a-z0-9]", "", PurePosixPath(filename).suffix.lower())[:9]
    if instance.kind not in JobFile.Kind.values:
        raise ValueError("a job file's kind must be one of JobFile.Kind")
    job = uuid.UUID(str(instance.job_id))  # a job id, nothing that could carry a path
    name = (
        f"{UPLOAD_PREFIX}/{job}/{instance.kind}-{uuid.uuid4().hex}{'.' if suffix else ''}{suffix}"
    )
    validate_upload_name(name)
    return name


class FileExpired(PermissionDenied):
    """A link was asked for a file whose job has expired: the file is deleted, or about to be."""


class JobFieldFile(FieldFile):
    """A job file's link dies with its job: a presigned URL lasts the storage's query-string
    expiry (AWS_QUERYSTRING_EXPIRE) or the seconds the job has left, whichever is less, and an
    expired job's file gets no link at all."""

    @property
    def url(self):
        if not self:
            return super().url  # Django's error for a field with no file
        expires_at = self.instance.job.expires_at
        left = (expires_at - timezone.now()).total_seconds()
        if left < 1:  # a link lasts whole seconds, at least one
            when = timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M:%S %Z")
            raise FileExpired(
                f"this file's job {'expired' if left < 0 else 'expires'} at {when}: no link "
                "is handed out"
            )
        lifetime = getattr(self.storage, "querystring_expire", None)  # S3Storage's setting
        if lifetime is None:
            return super().url
        return self.storage.url(self.name, expire=min(lifetime, int(left)))


class JobFileField(models.FileField):
    attr_class = JobFieldFile

    def deconstruct(self):
        # Only the links it hands out differ; to migrations (and the column) it is a FileField.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.FileField", args, kwargs


class JobFile(models.Model):
    class Kind(models.TextChoices):
        ORIGINAL = "original", "Original photo"
        AI_GENERATED = "ai_generated", "AI generated"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Indexed: storage deletes and the orphan reconciler look files up by name.
    file = JobFileField(upload_to=job_file_upload_to, max_length=512, db_index=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"JobFile {self.pk} ({self.kind})"

    def clean_fields(self, exclude=None):
        # The name rule is model validation of `file` (forms, the admin, full_clean()); kept out
        # of the field's `validators` so it needs no migration of the field.
        errors = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "file" not in (exclude or ()) and self.file.name:
            try:
                validate_upload_name(self.file)
            except ValidationError as exc:
                errors.setdefault("file", []).extend(exc.error_list)
        if errors:
            raise ValidationError(errors)


class SmsLog(models.Model):
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

    def __str__(self):
        return f"SmsLog {self.pk} ({self.status})"


class PhoneVerificationAttempt(models.Model):
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="phone_verification_attempts"
    )
    phone_number = models.CharField(max_length=20)
    code = models.CharField(max_length=8)
    verified = models.BooleanField(default=False)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"PhoneVerificationAttempt {self.pk}"


class Report(models.Model):
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="report")
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Report {self.pk}"


class ReportKnowledge(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="knowledge")
    position = models.PositiveSmallIntegerField(default=0)
    topic = models.CharField(max_length=100)
    content = models.TextField()
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position"]

    def __str__(self):
        return f"ReportKnowledge {self.pk} ({self.topic})"
