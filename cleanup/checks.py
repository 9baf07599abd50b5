"""System checks for what would make the first purge fail, each with the fix. Those that reach S3
or the database run only under `check --deploy`: no other command (nor a worker) waits on S3."""

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from django.db import DatabaseError

from . import services
from .deletion import GENERIC, NOT_CASCADE, SHAPE, UNDECLARED_FILES, purge_plan, unheard_receivers
from .services.lifecycle import LifecycleFailed, expiration_days, lifecycle_findings
from .storage import describe_error
from .storage.probe import MISSING, REFUSED, UNREACHABLE, WRONG_REGION

TAG = "cleanup"

# A storage probe's problem: (id, message with the probe and `where`, hint); any other is E009.
STORAGE_ERRORS = {
    MISSING: (
        "cleanup.E001",
        "The storage bucket {where} does not exist ({p.reason}): every upload and every file "
        "delete of the purge would fail.",
        "Create the bucket before anything uses it: `python manage.py create_bucket` (README, "
        "'Running it in production'), or set AWS_STORAGE_BUCKET_NAME to the bucket that holds "
        "the files.",
    ),
    REFUSED: (
        "cleanup.E002",
        "The storage refused these credentials for bucket {where} ({p.reason}).",
        "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the machine's role): valid for "
        "this endpoint, and allowed s3:ListBucket, s3:GetObject, s3:PutObject and "
        "s3:DeleteObject on the bucket.",
    ),
    UNREACHABLE: (
        "cleanup.E003",
        "The storage endpoint {p.endpoint} could not be reached for bucket '{p.bucket}' "
        "({p.reason}).",
        "Check AWS_S3_ENDPOINT_URL (leave it unset for AWS itself), AWS_S3_REGION_NAME, and the "
        "network path from this machine. Each attempt waited at most AWS_S3_CONNECT_TIMEOUT + "
        "AWS_S3_READ_TIMEOUT seconds.",
    ),
    WRONG_REGION: (
        "cleanup.E008",
        "The storage bucket {where} is not in region '{p.region}' ({p.reason}).",
        "Set AWS_S3_REGION_NAME to the bucket's region.",
    ),
    None: (
        "cleanup.E009",
        "The storage bucket {where} answered with an error ({p.reason}).",
        "Check the bucket's settings and permissions; run the check again.",
    ),
}


@register(TAG, deploy=True)
def storage_check(app_configs=None, **kwargs):
    probe = services.check_storage()
    if probe is None:  # local files: nothing to reach
        return []
    if not probe.problem:
        return [Info(_versioning(probe), id="cleanup.I001")]
    check_id, message, hint = STORAGE_ERRORS.get(probe.problem, STORAGE_ERRORS[None])
    where = f"'{probe.bucket}' at {probe.endpoint}"
    return [Error(message.format(p=probe, where=where), hint=hint, id=check_id)]


@register(TAG, deploy=True)
def lifecycle_check(app_configs=None, **kwargs):
    """The lifecycle backstop: missing warns; shorter than JOB_TTL errs (S3 deletes live files)."""
    try:
        findings = lifecycle_findings()
    except LifecycleFailed as exc:
        return [
            Warning(
                f"The bucket's lifecycle configuration could not be read ({exc}).",
                hint="Allow s3:GetLifecycleConfiguration; a server without lifecycle support "
                "(s3rver) cannot hold the backstop.",
                id="cleanup.W022",
            )
        ]
    if findings is None:  # local files: no lifecycle
        return []
    where = f"bucket '{findings.bucket}' on '{findings.prefix}'"
    messages = [
        Error(
            f"Lifecycle rule {rule} in {where}: sooner than JOB_TTL ({settings.JOB_TTL}), so "
            "S3 would delete files of live jobs.",
            hint=f"Make it at least {expiration_days(settings.JOB_TTL)} days (JOB_TTL + 1 day, "
            "as storage_lifecycle writes), or keep its prefix off the upload prefix.",
            id="cleanup.E021",
        )
        for rule in findings.too_short
    ]
    if not findings.backstop:
        messages.append(
            Warning(
                f"No lifecycle backstop in {where}: if the purge stops running, the jobs' "
                "files stay in the bucket indefinitely.",
                hint="Run `python manage.py storage_lifecycle --apply` (docs/backstop.md).",
                id="cleanup.W021",
            )
        )
    return messages


def _versioning(probe) -> str:
    bucket = f"Bucket '{probe.bucket}'"
    if probe.versioning is None:
        return (
            f"{bucket}: versioning state could not be read ({probe.versioning_reason}); allow "
            "s3:GetBucketVersioning to see it here."
        )
    if probe.versioning == "":
        return f"{bucket}: versioning has never been enabled; a deleted object is gone at once."
    return (
        f"{bucket}: versioning is {probe.versioning}; objects can have older versions and "
        "delete markers, which must go too for a photo to be gone."
    )


@register(TAG, deploy=True)
def schedule_check(app_configs=None, **kwargs):
    try:
        states = services.check_schedules()
    except DatabaseError as exc:
        return [
            Error(
                f"The beat schedule could not be read from the database ({describe_error(exc)}).",
                hint="On a new database run `python manage.py migrate`: it creates the tables "
                "and the schedule rows. Otherwise check DATABASE_URL.",
                id="cleanup.E007",
            )
        ]
    return [message for state in states for message in _schedule_errors(state)]


def _schedule_errors(state) -> list:
    s, row = state.schedule, f"The beat schedule row '{state.schedule.name}'"
    found = []
    if not state.exists:
        hint = (
            "`python manage.py migrate` creates it on a new database. If it was deleted, add it "
            f"again in Django admin -> Periodic tasks: name '{s.name}', task '{s.task}', crontab "
            f"'{s.crontab}' in Asia/Seoul, keyword arguments {s.kwargs}, enabled."
        )
        found.append((f"{row} does not exist, so beat never runs {s.task}", hint, "E004"))
    elif not state.enabled:
        hint = (
            f"Tick 'Enabled' in Django admin -> Periodic tasks -> {s.name}; a running beat "
            "picks it up without a restart."
        )
        found.append((f"{row} is disabled, so beat does not run {s.task}", hint, "E005"))
    if state.exists and state.runs != s.task:
        hint = f"Pick '{s.task}' as its task in Django admin -> Periodic tasks -> {s.name}."
        found.append((f"{row} runs '{state.runs}', not '{s.task}'", hint, "E006"))
    return [Error(f"{msg}: {s.purpose}.", hint=hint, id=f"cleanup.{n}") for msg, hint, n in found]


# The purge's delete plan (cleanup/deletion.py): what it cannot honour, with the way out.
PLAN_ERRORS = {
    NOT_CASCADE: "The plan deletes with plain DELETEs and honours only CASCADE: make the relation "
    "on_delete=CASCADE, or move the model out of the Job's cascade.",
    GENERIC: "A generic relation has no foreign key for the plan to follow, so its rows would "
    "outlive the job: give the related model a ForeignKey with on_delete=CASCADE instead.",
    UNDECLARED_FILES: "Its files would outlive its rows: add the model to CLEANUP_FILE_MODELS.",
    SHAPE: "One DELETE per model cannot follow it: break the cycle or the multi-table inheritance.",
}
PLAN_IDS = {NOT_CASCADE: "E030", GENERIC: "E031", UNDECLARED_FILES: "E032", SHAPE: "E033"}


@register(Tags.models, TAG)
def delete_plan_check(app_configs=None, **kwargs):
    """Model metadata only, nothing reached: it runs with every command's checks."""
    plan = purge_plan()
    messages = [
        Error(
            f"The purge's delete plan cannot honour {what}: {kind}.",
            hint=PLAN_ERRORS[kind],
            id=f"cleanup.{PLAN_IDS[kind]}",
        )
        for kind, what in plan.problems
    ]
    # A warning: rows and files still go; what is skipped is a side effect someone else wanted.
    messages += [
        Warning(
            f"{where} has delete receivers the purge does not send: its delete plan deletes "
            "with plain SQL and sends no pre_delete or post_delete signal.",
            hint="Do that work another way for purged rows, or silence cleanup.W030.",
            id="cleanup.W030",
        )
        for where in unheard_receivers(plan)
    ]
    return messages
