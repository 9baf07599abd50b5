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
    return LEVELS[check_id[0]](message, hint=hint, id=f"cleanup.{check_id}")


STORAGE_IDS = {MISSING: "E001", REFUSED: "E002", UNREACHABLE: "E003", WRONG_REGION: "E008"}
STORAGE_ERRORS = {
    MISSING: (
        "The storage bucket {where} does not exist ({p.reason}): uploads and purges would fail.",
        "Create the bucket (`python manage.py create_bucket`) or set AWS_STORAGE_BUCKET_NAME.",
    ),
    REFUSED: (
        "The storage refused these credentials for bucket {where} ({p.reason}).",
        "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the machine's role): valid here and "
        "allowed s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket.",
    ),
    UNREACHABLE: (
        "The storage endpoint {p.endpoint} could not be reached for '{p.bucket}' ({p.reason}).",
        "Check AWS_S3_ENDPOINT_URL (unset for AWS), AWS_S3_REGION_NAME and the network.",
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
    hint = f"Make it at least {expiration_days(ttl)} days, or keep its prefix off the uploads'."
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
    problems = []
    for state in states:
        s, row = state.schedule, f"The beat schedule row '{state.schedule.name}'"
        admin, why = f"Django admin -> Periodic tasks -> {s.name}", f": {s.purpose}."
        if not state.exists:
            hint = (
                "`python manage.py migrate` creates it on a new database. If it was deleted, add "
                f"it again in Django admin -> Periodic tasks: name '{s.name}', task '{s.task}', "
                f"crontab '{s.crontab}' in Asia/Seoul, keyword arguments {s.kwargs}, enabled."
            )
            problems.append(found("E004", f"{row} does not exist: beat skips {s.task}{why}", hint))
        elif not state.enabled:
            hint = f"Tick 'Enabled' in {admin}; a running beat picks it up without a restart."
            problems.append(found("E005", f"{row} is disabled: beat skips {s.task}{why}", hint))
        if state.exists and state.runs != s.task:
            hint = f"Pick '{s.task}' as its task in {admin}."
            problems.append(found("E006", f"{row} runs '{state.runs}', not '{s.task}'{why}", hint))
    return problems


PLAN_ERRORS = {
    NOT_CASCADE: "Only CASCADE is honoured: make it on_delete=CASCADE, or leave the Job's cascade.",
    GENERIC: "It has no foreign key to follow: give the model a ForeignKey on_delete=CASCADE.",
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
    unheard = "has delete receivers the purge does not send: it deletes with SQL, without signals."
    hint = "Do that work another way for purged rows, or silence cleanup.W030."
    return messages + [found("W030", f"{w} {unheard}", hint) for w in unheard_receivers(plan)]
