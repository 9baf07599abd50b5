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
LEVELS = {"E": Error, "W": Warning, "I": Info}


def found(check_id: str, message: str, hint: str | None = None):
    """cleanup.<check_id>, at the level its first letter names."""
    return LEVELS[check_id[0]](message, hint=hint, id=f"cleanup.{check_id}")


# A storage probe's problem: its id and (message with the probe and `where`, hint); else E009.
STORAGE_IDS = {MISSING: "E001", REFUSED: "E002", UNREACHABLE: "E003", WRONG_REGION: "E008"}
STORAGE_ERRORS = {
    MISSING: (
        "The storage bucket {where} does not exist ({p.reason}): every upload and every file "
        "delete of the purge would fail.",
        "Create the bucket before anything uses it: `python manage.py create_bucket` (README, "
        "'Running it in production'), or set AWS_STORAGE_BUCKET_NAME to the bucket that holds "
        "the files.",
    ),
    REFUSED: (
        "The storage refused these credentials for bucket {where} ({p.reason}).",
        "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the machine's role): valid here and "
        "allowed s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket.",
    ),
    UNREACHABLE: (
        "The storage endpoint {p.endpoint} could not be reached for bucket '{p.bucket}' "
        "({p.reason}).",
        "Check AWS_S3_ENDPOINT_URL (unset for AWS), AWS_S3_REGION_NAME and the network; each "
        "attempt waited at most AWS_S3_CONNECT_TIMEOUT + AWS_S3_READ_TIMEOUT seconds.",
    ),
    WRONG_REGION: (
        "The storage bucket {where} is not in region '{p.region}' ({p.reason}).",
        "Set AWS_S3_REGION_NAME to the bucket's region.",
    ),
    None: (
        "The storage bucket {where} answered with an error ({p.reason}).",
        "Check the bucket's settings and permissions; run the check again.",
    ),
}
# I001: the bucket's versioning ("" never enabled; None unread), else Enabled or Suspended.
VERSIONING = {
    None: "versioning state unread ({p.versioning_reason}); allow s3:GetBucketVersioning.",
    "": "versioning has never been enabled; a deleted object is gone at once.",
}
VERSIONED = "versioning is {p.versioning}: older versions and delete markers must go too."


@register(TAG, deploy=True)
def storage_check(app_configs=None, **kwargs):
    probe = services.check_storage()
    if probe is None:  # local files: nothing to reach
        return []
    if not probe.problem:
        versioning = VERSIONING.get(probe.versioning, VERSIONED).format(p=probe)
        return [found("I001", f"Bucket '{probe.bucket}': {versioning}")]
    message, hint = STORAGE_ERRORS.get(probe.problem, STORAGE_ERRORS[None])
    where = f"'{probe.bucket}' at {probe.endpoint}"
    check_id = STORAGE_IDS.get(probe.problem, "E009")
    return [found(check_id, message.format(p=probe, where=where), hint)]


@register(TAG, deploy=True)
def lifecycle_check(app_configs=None, **kwargs):
    """The lifecycle backstop: missing warns; shorter than JOB_TTL errs (S3 deletes live files)."""
    try:
        findings = lifecycle_findings()
    except LifecycleFailed as exc:
        message = f"The bucket's lifecycle configuration could not be read ({exc})."
        hint = "Allow s3:GetLifecycleConfiguration (a server without lifecycle has no backstop)."
        return [found("W022", message, hint)]
    if findings is None:  # local files: no lifecycle
        return []
    where, ttl = f"bucket '{findings.bucket}' on '{findings.prefix}'", settings.JOB_TTL
    hint = (
        f"Make it at least {expiration_days(ttl)} days (JOB_TTL + 1 day, as storage_lifecycle "
        "writes), or keep its prefix off the upload prefix."
    )
    too_short = f"sooner than JOB_TTL ({ttl}), so S3 would delete files of live jobs"
    messages = [
        found("E021", f"Lifecycle rule {r} in {where}: {too_short}.", hint)
        for r in findings.too_short
    ]
    if not findings.backstop:
        message = f"No lifecycle backstop in {where}: if the purge stops, files stay in the bucket."
        hint = "Run `python manage.py storage_lifecycle --apply` (docs/backstop.md)."
        messages.append(found("W021", message, hint))
    return messages


@register(TAG, deploy=True)
def schedule_check(app_configs=None, **kwargs):
    try:
        states = services.check_schedules()
    except DatabaseError as exc:
        message = f"The beat schedule could not be read from the database ({describe_error(exc)})."
        hint = "On a new database run `python manage.py migrate`; else check DATABASE_URL."
        return [found("E007", message, hint)]
    return [message for state in states for message in _schedule_errors(state)]


def _schedule_errors(state) -> list:
    s, row = state.schedule, f"The beat schedule row '{state.schedule.name}'"
    admin = f"Django admin -> Periodic tasks -> {s.name}"
    problems = []
    if not state.exists:
        hint = (
            "`python manage.py migrate` creates it on a new database. If it was deleted, add it "
            f"again in Django admin -> Periodic tasks: name '{s.name}', task '{s.task}', crontab "
            f"'{s.crontab}' in Asia/Seoul, keyword arguments {s.kwargs}, enabled."
        )
        problems.append(("E004", f"{row} does not exist, so beat never runs {s.task}", hint))
    elif not state.enabled:
        hint = f"Tick 'Enabled' in {admin}; a running beat picks it up without a restart."
        problems.append(("E005", f"{row} is disabled, so beat does not run {s.task}", hint))
    if state.exists and state.runs != s.task:
        hint = f"Pick '{s.task}' as its task in {admin}."
        problems.append(("E006", f"{row} runs '{state.runs}', not '{s.task}'", hint))
    return [found(n, f"{message}: {s.purpose}.", hint) for n, message, hint in problems]


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
        found(PLAN_IDS[kind], f"The delete plan cannot honour {what}: {kind}.", PLAN_ERRORS[kind])
        for kind, what in plan.problems
    ]
    # A warning: rows and files still go; what is skipped is a side effect someone else wanted.
    unheard = (
        "has delete receivers the purge does not send: its delete plan deletes with plain SQL "
        "and sends no pre_delete or post_delete signal."
    )
    hint = "Do that work another way for purged rows, or silence cleanup.W030."
    return messages + [
        found("W030", f"{where} {unheard}", hint) for where in unheard_receivers(plan)
    ]
