import uuid

from django.conf import settings
from django.db import connections, models
from django.utils import timezone


class PendingFileDeletionQuerySet(models.QuerySet):
    def record(self, names, *, at=None) -> uuid.UUID:
        """Add a pending row per name, in one statement; returns the token written on them.

        `at` is when the names became pending (default now). The token picks out exactly these
        rows again (files.py forgets a batch's rows by it). A name can be pending in more than
        one row (recorded again after a person resolved it, or two rows that held one object):
        each row keeps its own attempt history, and deleting the object forgets them.
        """
        names = list(dict.fromkeys(names))
        now = at or timezone.now()
        token = uuid.uuid4()
        if not names:
            return token
        connection = connections[self.db]
        if connection.vendor != "postgresql":
            # Django splits the INSERT to fit the backend's parameter limit (SQLite).
            self.bulk_create(
                [
                    PendingFileDeletion(name=n, created_at=now, next_attempt_at=now, batch=token)
                    for n in names
                ]
            )
            return token
        # A purge batch records 20,000 names: binary COPY, the cheapest way into a table
        # (measured on 20,000 names: 35 ms, against 55 ms as text and 76 ms for INSERT … SELECT
        # unnest()).
        meta, quote = self.model._meta, connection.ops.quote_name
        fields = ["name", "created_at", "attempts", "last_error", "next_attempt_at"]
        fields += ["resolved_by", "refused_reason", "batch"]
        columns = ", ".join(quote(meta.get_field(f).column) for f in fields)
        types = ["varchar", "timestamptz", "int4", "text", "timestamptz", "varchar", "varchar"]
        types.append("uuid")
        # The driver's cursor: a connection lost mid-COPY raises Django's DatabaseError, as usual.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            sql = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN (FORMAT BINARY)"
            with cursor.cursor.copy(sql) as copy:
                copy.set_types(types)
                for name in names:
                    copy.write_row((name, now, 0, "", now, "", "", token))
        return token

    def unresolved(self):
        return self.filter(resolved_at__isnull=True)

    def resolved(self):
        return self.filter(resolved_at__isnull=False)

    def due(self, now=None):
        # Refused names are never sent to storage again: they wait for a person, not a run.
        return self.waiting().filter(next_attempt_at__lte=now or timezone.now())

    def refused(self):
        return self.unresolved().exclude(refused_reason="")

    def waiting(self):
        """Names a run will still try: neither resolved by a person nor refused."""
        return self.unresolved().filter(refused_reason="")

    def stuck(self):
        """The one rule for stuck: a name a run still tries (not refused, not resolved) that
        storage has refused CLEANUP_STUCK_AFTER_ATTEMPTS times. A person must look."""
        return self.waiting().filter(_stuck())

    def not_stuck(self):
        """Pending proper: still tried by every run, and not (yet) a person's business."""
        return self.waiting().exclude(_stuck())

    def needs_a_person(self):
        """Stuck or refused: alerted until a person marks them resolved in the admin."""
        return self.stuck() | self.refused()

    def with_stuck(self):
        """Each row annotated `is_stuck`, by the rule above (for the admin's per-row state)."""
        return self.annotate(
            is_stuck=models.Exists(self.model.objects.stuck().filter(pk=models.OuterRef("pk")))
        )


def _stuck() -> models.Q:
    return models.Q(attempts__gte=settings.CLEANUP_STUCK_AFTER_ATTEMPTS)


class PendingFileDeletion(models.Model):
    """A storage object whose row is gone and whose file must go too.

    Written in the same transaction as the row delete, removed once storage confirms the delete,
    so neither a rollback nor a crash nor an outage can leave a file behind unnoticed.
    """

    # Neither unique (see record()) nor indexed: a purge batch writes 20,000 of these rows, and
    # an index on a random name costs each write as much as the row itself (measured: COPY of
    # 20,000 rows, 71 ms with it, 35 ms without). Rows are found by key or by batch token (both
    # indexed), or by scanning a table that holds only batches in flight and past failures;
    # names spelled oddly have their own small partial index (migration 0008).
    name = models.CharField(max_length=512)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Not indexed: the sweep reads the rows that failed before (few); an index here would cost
    # every batch's COPY and DELETE of its names.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A person dealt with a stuck name (deleted it by hand, or found it must stay): it no longer
    # counts as pending or stuck, and is no longer tried, but stays here as the record of that.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    # Set when the name was never sent to storage because it does not resolve to a key under the
    # upload prefix (another spelling of a key, '..', an absolute path, a symlink out of
    # MEDIA_ROOT...): why, in words without the name. Its row is purged; the name stays here,
    # shown by purge_status and the admin, for a person to look at.
    refused_reason = models.CharField(max_length=200, blank=True, default="")
    # Written by record() on every row of one call (a purge batch): the run that wrote them
    # forgets them in one statement once storage has answered, with no lookup per name.
    # Indexed: all of a batch's rows share one value, so the index stays small and cheap to
    # write, and forgetting a batch never scans the rows of the others (or the dead ones).
    batch = models.UUIDField(null=True, blank=True, editable=False, db_index=True)

    objects = PendingFileDeletionQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        permissions = [("retry_pending", "Can retry pending file deletions now")]

    def __str__(self):
        return self.name


def _new_group() -> str:
    return uuid.uuid4().hex


class PurgeRun(models.Model):
    """One run of the purge: when, why, and what it removed. Counts only, never personal data."""

    class Trigger(models.TextChoices):
        BEAT = "beat", "Celery Beat"
        TASK = "task", "Celery task"
        COMMAND = "command", "Management command"
        ADMIN = "admin", "Django admin"
        SHELL = "shell", "Python call"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FILES_PENDING = "files_pending", "Rows purged, files pending"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"
        # A fan-out run that used its time budget with expired jobs left, and handed them to a
        # successor in its group: routine, not a failure, so monitors stay quiet.
        HANDED_OVER = "handed_over", "Time budget used, handed over"
        # Its process died mid-run (nothing can record a SIGKILL); a later purge noticed.
        ABANDONED = "abandoned", "Abandoned (process died)"
        # A dry run that completed: it counted, deleted nothing, and is never a successful purge.
        DRY_RUN = "dry_run", "Dry run (nothing deleted)"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Bumped, with the counts so far, after every batch: a dead run shows how far it got.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SHELL)
    # Who asked, for runs started from the admin (the staff user's username); blank otherwise.
    requested_by = models.CharField(max_length=150, blank=True)
    # The Celery task that ran it, to find it in Flower or a result backend; blank otherwise.
    task_id = models.CharField(max_length=255, blank=True)
    # The purge this run is part of: every run started for one request (a beat tick's fan-out
    # and the successors its runs hand over to) shares the requesting task's id; a run started
    # alone has a group of its own. The history shows one purge per group.
    group = models.CharField(max_length=255, default=_new_group, db_index=True)
    # How data was destroyed (database and storage), for the destruction ledger.
    method = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    dry_run = models.BooleanField(default=False)
    cutoff = models.DateTimeField(help_text="Jobs with expires_at before this were purged.")
    batch_size = models.PositiveIntegerField()
    limit = models.PositiveIntegerField(null=True, blank=True)
    batches = models.PositiveIntegerField(default=0)
    jobs_deleted = models.PositiveIntegerField(default=0)
    rows_deleted = models.JSONField(default=dict, blank=True)
    files_deleted = models.PositiveIntegerField(default=0)
    files_pending = models.PositiveIntegerField(default=0)
    # A dry run's prediction; the *_deleted counts of a dry run stay 0, as nothing was deleted.
    would_delete_jobs = models.PositiveIntegerField(default=0)
    would_delete_rows = models.JSONField(default=dict, blank=True)
    would_delete_files = models.PositiveIntegerField(default=0)
    # The Retention page's history, which cannot be recomputed later: the expired backlog when
    # the run started, and every pending file deletion when it ended (None: not measured).
    expired_at_start = models.PositiveIntegerField(null=True, blank=True)
    oldest_expired_seconds_at_start = models.FloatField(null=True, blank=True)
    pending_files_at_end = models.PositiveIntegerField(null=True, blank=True)
    # File names never sent to storage (see PendingFileDeletion.refused_reason).
    files_refused = models.PositiveIntegerField(default=0)
    # Requests the S3 client sent again (throttling, 5xx, dropped connections): storage trouble
    # that botocore absorbed, which shows nowhere else.
    storage_retries = models.PositiveIntegerField(default=0)
    # Names this run tried that are now stuck: purge_status's alert, not in files_pending.
    files_stuck = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        permissions = [("run_purge", "Can start a purge of expired jobs now")]

    def __str__(self):
        return f"Purge run {self.pk} ({self.status})"

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None

    @property
    def run_id(self) -> int:
        return self.pk

    @property
    def duration_seconds(self) -> float | None:
        return round(self.duration.total_seconds(), 3) if self.finished_at else None

    @property
    def rows_total(self) -> int:
        return sum(self.rows_deleted.values())

    @property
    def would_delete_rows_total(self) -> int:
        return sum(self.would_delete_rows.values())

    @property
    def ok(self) -> bool:
        """It did all it set out to: purged everything (or, for a dry run, counted it)."""
        return self.status in (self.Status.SUCCEEDED, self.Status.DRY_RUN)

    def as_dict(self) -> dict:
        """The run as JSON: every field, and the totals (the task's result, `--json`)."""
        return _as_dict(self, "rows_total", "would_delete_rows_total")


def _as_dict(run, *extra) -> dict:
    data = {f.attname: f.value_from_object(run) for f in run._meta.concrete_fields}
    for name, value in data.items():
        if hasattr(value, "isoformat"):
            data[name] = value.isoformat()
    names = ["run_id", *extra, "duration_seconds"]
    return data | {name: getattr(run, name) for name in names}


class Retention(PurgeRun):
    """The admin's Retention page (status and seven days of plots); no data of its own."""

    class Meta:
        proxy = True
        verbose_name = "retention"
        verbose_name_plural = "retention"
        # Any staff member may look (cleanup/admin.py); nothing to add, change or delete.
        default_permissions = ()


class StorageBinding(models.Model):
    """Which storage holds the files this database names: one row, the binding.

    Written when the first file row is saved (or by migration 0008 for a deployment that already
    had files), and changed only by `manage.py bind_storage --rebind`. Every delete from storage
    (the purge, its fan-out, the pending sweep, Retry now, the after-commit delete of rows
    deleted elsewhere, the reconciler) first compares the configured storage with it and refuses
    on any difference: a process pointed at the wrong storage would otherwise report files
    deleted (local storage treats a missing file as deleted) while the real ones stay forever.

    The identity is what names the files, not how they are reached: the backend, and the bucket
    and key prefix on S3 (not the endpoint URL) or the resolved MEDIA_ROOT for local files.
    """

    class Kind(models.TextChoices):
        S3 = "s3", "S3 or S3-compatible"
        LOCAL = "local", "Local files"

    # Always 1: there is one binding per database.
    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    bucket = models.CharField(max_length=255, blank=True, help_text="S3 only.")
    location = models.CharField(
        max_length=1024, blank=True, help_text="S3: the key prefix. Local: the absolute MEDIA_ROOT."
    )
    bound_at = models.DateTimeField(default=timezone.now)
    bound_by = models.CharField(max_length=150, help_text="Who or what bound it.")
    # The binding this one replaced, in words, so a switch can be traced back.
    previous = models.CharField(max_length=1500, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="one_storage_binding")]

    def __str__(self):
        return f"Storage binding ({self.kind})"


class ReconcileRun(models.Model):
    """One run of the orphan reconciler: counts and bytes, never a name."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # It would have deleted too much (an empty database, more than the allowed share of
        # orphans) or ran on a storage the database does not know: nothing was deleted.
        REFUSED = "refused", "Refused, nothing deleted"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(
        max_length=16, choices=PurgeRun.Trigger.choices, default=PurgeRun.Trigger.SHELL
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True
    )
    delete = models.BooleanField(default=False)
    forced = models.BooleanField(default=False)
    cutoff = models.DateTimeField(help_text="Objects modified after this were left alone.")
    scanned = models.PositiveIntegerField(default=0)
    scanned_bytes = models.PositiveBigIntegerField(default=0)
    young = models.PositiveIntegerField(default=0)
    held = models.PositiveIntegerField(default=0)
    orphans = models.PositiveIntegerField(default=0)
    orphan_bytes = models.PositiveBigIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    deleted_bytes = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Stored keys that break the upload-name rule: never sent, kept as refused pending names.
    refused_keys = models.PositiveIntegerField(default=0)
    # Incomplete multipart uploads under the upload prefix: past grace with no live job (aborted
    # with --delete), and the ones kept (young, or their job is live).
    uploads_orphaned = models.PositiveIntegerField(default=0)
    uploads_aborted = models.PositiveIntegerField(default=0)
    uploads_kept = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    # Not columns: what reconcile_storage tells its caller besides the record (storage requests
    # sent, and a few orphan keys for --verbosity 2; keys are never stored).
    requests = 0
    examples = ()

    def __str__(self):
        return f"Reconcile run {self.pk} ({self.status})"

    run_id = PurgeRun.run_id
    duration_seconds = PurgeRun.duration_seconds
    duration = PurgeRun.duration

    @property
    def ok(self) -> bool:
        return self.status == self.Status.SUCCEEDED and not self.error

    @property
    def refused(self) -> bool:
        return self.status == self.Status.REFUSED

    def as_dict(self) -> dict:
        return _as_dict(self, "requests")
