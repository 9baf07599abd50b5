"""Safe by class, not by case (issue 18 items 1, 3, 4, 9; issue 17 item 6), on more than one S3.

- Every key character outside the upload-name allow-list is refused by model validation and never
  sent by the purge; a live `jobs/<id>/photo.png` beside an expired `jobs/<id>/photo.png<space>`
  survives on moto, s3rver (which trims Unicode whitespace from DeleteObjects keys) and SeaweedFS.
- Every status code class DeleteObjects can answer: the storage's trouble (5xx, throttling,
  timeouts) is retried by botocore, never split, never charged to a name, and the run says
  files_pending; only a rejection of what the request carried counts toward stuck.
- The reconciler keeps refused keys as refused names without failing, and measures its grace on
  the database's clock.
"""

import uuid
from datetime import timedelta

import botocore.exceptions as boto
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cleanup.models import PendingFileDeletion, PurgeRun, ReconcileRun
from cleanup.services import purge_expired_jobs, reconcile_storage
from cleanup.storage import s3
from jobs.models import UPLOAD_PREFIX, Job, JobFile, validate_upload_name
from tests.helpers import expired_job, file_names, live_job
from tests.s3proxy import FORWARD, S3Proxy

ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
WHITESPACE = [" ", "\u00a0", "\u2003", "\u3000", "\ufeff"]
NAMED = [*WHITESPACE, "\t", "\n", "\x00", "\x7f", "\x85", "\\", "%", "+", "?", "#", "é", "한", "ß"]


# --- the rule, as a class of characters ---------------------------------------------------------


@given(
    st.text(min_size=1, max_size=8).filter(lambda t: not set(t) <= ALLOWED | {"/"}),
    st.sampled_from(["", "p", "photo.png"]),
)
@hsettings(max_examples=300, deadline=None)
def test_every_character_outside_the_allow_list_is_refused_by_model_validation(odd, rest):
    name = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/{rest}{odd}{rest}"
    with pytest.raises(ValidationError):
        validate_upload_name(name)
    row = JobFile(kind=JobFile.Kind.ORIGINAL, file=name)
    with pytest.raises(ValidationError) as refused:
        row.clean_fields(exclude=["job"])
    assert "file" in refused.value.message_dict


@given(st.lists(st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=12), min_size=1))
def test_every_name_inside_the_allow_list_passes(segments):
    name = "/".join([UPLOAD_PREFIX, *segments])
    assert validate_upload_name.problem(name) == "" or {".", ".."} & set(segments)


@pytest.mark.parametrize(
    "name",
    ["jobs", "jobs/", "other/a.png", "jobs//a.png", "jobs/./a.png", "jobs/../a.png", "jobs/a/"]
    + [f"jobs/a/{'x' * 1100}.png"],
)
def test_segments_prefix_and_length_are_part_of_the_rule(name):
    assert validate_upload_name.problem(name)


# --- names on every server ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("char", WHITESPACE + ["\\", "%", "+"])
def test_a_live_file_survives_an_expired_row_that_differs_by_one_character(s3_three, char):
    live = live_job()
    kept = file_names(live)[0]
    doomed = expired_job()
    JobFile.objects.filter(job=doomed).filter(pk=doomed.files.first().pk).update(file=kept + char)

    result = purge_expired_jobs()

    assert kept in s3_three.keys()
    assert not Job.objects.filter(pk=doomed.pk).exists()
    assert result.status == PurgeRun.Status.FILES_PENDING and result.files_refused == 1
    refused = PendingFileDeletion.objects.refused().get()
    assert refused.name == kept + char and "allow-list" in refused.refused_reason


# --- every answer DeleteObjects can give --------------------------------------------------------

TROUBLE = [
    (503, "SlowDown"),
    (503, "ServiceUnavailable"),
    (500, "InternalError"),
    (502, "BadGateway"),
    (504, "GatewayTimeout"),
    (400, "RequestTimeout"),
    (429, "TooManyRequests"),
]
REJECTED = [(400, "MalformedXML"), (400, "InvalidArgument")]


@pytest.fixture
def throttled(s3_two, settings):
    with S3Proxy(s3_two.endpoint_url) as proxy:
        options = {**settings.STORAGES["default"]["OPTIONS"], "endpoint_url": proxy.endpoint_url}
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**settings.STORAGES["default"], "OPTIONS": options},
        }
        yield proxy


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "code"), TROUBLE)
@pytest.mark.slow
def test_storage_trouble_is_never_charged_to_a_name(throttled, settings, status, code):
    settings.CLEANUP_STUCK_AFTER_ATTEMPTS = 1
    jobs = [expired_job() for _ in range(10)]  # 40 names, one request's worth
    throttled.throttle_deletes(status, code)

    for _ in range(3):  # more runs than it takes to be stuck, were these attempts counted
        throttled.deletes = 0
        result = purge_expired_jobs()
        assert result.status == PurgeRun.Status.FILES_PENDING
        assert result.files_pending == 40 and result.files_stuck == 0
        attempts = settings.AWS_S3_CLIENT_CONFIG.retries["total_max_attempts"]
        assert 1 <= throttled.deletes <= attempts  # never split, at most attempts x requests
        assert PurgeRun.objects.get(pk=result.run_id).storage_retries >= throttled.deletes - 1
    assert set(PendingFileDeletion.objects.values_list("attempts", flat=True)) == {0}
    assert "HTTP" in result.error and "storage unavailable at" in result.error

    throttled.set_mode(FORWARD)
    assert purge_expired_jobs().status == PurgeRun.Status.SUCCEEDED
    assert not PendingFileDeletion.objects.exists() and not Job.objects.filter(pk=jobs[0].pk)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "code"), REJECTED)
def test_a_request_rejected_for_what_it_carried_counts_against_its_names(throttled, status, code):
    expired_job()
    throttled.throttle_deletes(status, code)
    result = purge_expired_jobs()
    assert result.status == PurgeRun.Status.FILES_PENDING
    assert set(PendingFileDeletion.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.parametrize("status", range(400, 600))
def test_every_status_code_has_one_meaning(status):
    kind = s3.classify_answer(status)
    if status >= 500 or status in (408, 429):
        assert kind == s3.UNREACHABLE
    elif status in (401, 403):
        assert kind == s3.REFUSED
    elif status == 404:
        assert kind == s3.MISSING
    else:
        assert kind == s3.REJECTED


@pytest.mark.parametrize(("code", "kind"), sorted(s3.CODES.items()))
def test_every_known_error_code_wins_over_its_status(code, kind):
    assert s3.classify_answer(400, code) == s3.classify_answer(500, code) == kind


@pytest.mark.parametrize(
    "exc",
    [
        boto.EndpointConnectionError(endpoint_url="http://s3.test"),
        boto.ConnectTimeoutError(endpoint_url="http://s3.test"),
        boto.ReadTimeoutError(endpoint_url="http://s3.test"),
        boto.ConnectionClosedError(endpoint_url="http://s3.test"),
    ],
)
def test_a_connection_failure_is_named_as_an_unreachable_storage(exc):
    assert s3.classify(exc) == s3.UNREACHABLE
    assert s3.explain(exc, "http://s3.test").startswith("storage unreachable at http://s3.test")


# --- the reconciler -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_refused_orphan_keys_are_kept_as_refused_names_and_do_not_fail_the_run(s3_two):
    live_job()
    odd = [f"{UPLOAD_PREFIX}/../x", f"{UPLOAD_PREFIX}/A//b.png", f"{UPLOAD_PREFIX}/A/p.png "]
    if s3_two.server == "s3rver":
        odd = odd[2:]  # s3rver cannot store a `..` or an empty segment (PutObject answers 404)
    for key in odd:
        s3_two.client.put_object(Bucket=s3_two.name, Key=key, Body=b"png")
    later = timezone.now() + timedelta(hours=2)

    for _ in range(2):
        result = reconcile_storage(delete=True, now=later, force=True)
        assert result.status == ReconcileRun.Status.SUCCEEDED, result.error
    assert ReconcileRun.objects.order_by("pk").first().refused_keys == len(odd)
    assert set(PendingFileDeletion.objects.refused().values_list("name", flat=True)) == set(odd)
    assert set(odd) <= s3_two.keys()


@pytest.mark.django_db
def test_the_grace_period_runs_on_the_database_clock(monkeypatch):
    live_job()
    orphan = default_storage.save(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original.png", ContentFile(b"x"))
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(minutes=10))  # fast

    result = reconcile_storage(delete=True, grace=timedelta(minutes=5), force=True)

    assert result.deleted == 0 and default_storage.exists(orphan)
