import json
import os
import uuid

import pytest
from django.db import connection

from tests.s3proxy import S3Proxy
from tests.s3server import S3rver, S3Server, SeaweedFS

# CI sets this: a test that needs PostgreSQL or Redis then fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("FMR_REQUIRE_SERVICES") == "1"

S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


def pytest_addoption(parser, pluginmanager):
    """pyproject.toml's addopts run the suite on pytest-xdist's workers (-n); with the plugin
    off (`-p no:xdist`, one process) its options are accepted and do nothing."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist")
        # _addoption: a short lowercase option, as pytest-xdist itself registers -n.
        group._addoption("-n", "--numprocesses", dest="numprocesses", help="(pytest-xdist off)")
        group.addoption("--dist", dest="dist", help="(pytest-xdist off)")


@pytest.hookimpl(tryfirst=True)  # before pytest-django's sort (db, transactional, no db), kept
def pytest_collection_modifyitems(config, items):
    """For pytest-xdist's workers (--dist loadgroup): the slow tests first, so that none is
    left to run alone at the end; the SeaweedFS tests all on one worker, the only one that
    starts SeaweedFS (its start is the slowest of the S3 servers')."""
    for item in items:
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        on_seaweedfs = any(value in ("seaweedfs", "seaweed") for value in params)
        if on_seaweedfs or "seaweed_bucket" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("seaweedfs"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _unavailable(reason):
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (FMR_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def redis_reachable(url) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(autouse=True)
def _required_services(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _unavailable(
            "needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/fmr to run it"
        )
    if request.node.get_closest_marker("redis"):
        from django.conf import settings

        problem = redis_reachable(settings.CELERY_BROKER_URL)
        if problem:
            _unavailable(
                f"needs Redis at CELERY_BROKER_URL={settings.CELERY_BROKER_URL} ({problem})"
            )


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes local files under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


@pytest.fixture
def staff(django_user_model):
    """A superuser who signs in to the admin."""
    return django_user_model.objects.create_user(
        "operator", password="operator-pass", is_staff=True, is_superuser=True
    )


@pytest.fixture
def chromium():
    """The real browser (tests/browser.py): `with chromium() as browser: ...`."""
    from tests.browser import chromium_missing, open_browser

    if reason := chromium_missing():
        _unavailable(reason)
    return open_browser


def _session_server(cls):
    @pytest.fixture(scope="session")
    def server():
        """Started when a test first asks, once per session, stopped at its end."""
        started = cls().start()
        yield started
        started.stop()

    return server


s3_server = _session_server(S3Server)
s3rver_server = _session_server(S3rver)
seaweedfs_server = _session_server(SeaweedFS)


def _server(request, kind):
    return request.getfixturevalue(f"{kind}_server" if kind != "moto" else "s3_server")


@pytest.fixture(params=["moto", "s3rver"])
def s3_two(request, settings):
    """A fresh bucket on moto, then on s3rver: the S3 safety tests hold on both."""
    return bucket_on(_server(request, request.param), settings)


@pytest.fixture(params=["moto", "s3rver", "seaweedfs"])
def s3_three(request, settings):
    """A fresh bucket on moto, s3rver and SeaweedFS in turn."""
    return bucket_on(_server(request, request.param), settings)


@pytest.fixture
def s3_bucket(s3_server, settings):
    """A fresh bucket on the S3-compatible server, made the default storage for this test."""
    return bucket_on(s3_server, settings)


def bucket_on(server, settings, fresh=False):
    """A bucket on `server`, made the default storage for this test: a fresh one, but on
    SeaweedFS one shared bucket unless the test needs its own (`fresh`), as SeaweedFS gives each
    bucket volumes of its own, out of -volume.max."""
    bucket = f"fmr-test-{uuid.uuid4().hex[:12]}"
    access, secret = server.credentials
    client = server.client()
    if server.name == "seaweedfs" and not fresh:
        bucket = "fmr-test-seaweedfs"
        if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            client.create_bucket(Bucket=bucket)
    else:
        client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": server.endpoint_url,
                **S3_CREDENTIALS,
                "access_key": access,
                "secret_key": secret,
            },
        },
    }
    return Bucket(client, bucket, server.endpoint_url, server.name)


class Bucket:
    def __init__(self, client, name, endpoint_url="", server="moto"):
        self.client = client
        self.name = name
        self.endpoint_url = endpoint_url
        self.server = server

    def deny_deletes(self, key):
        """A bucket policy that refuses deleting `key` (a pattern: `jobs/*`): S3 answers each
        such key in DeleteObjects' Errors (AccessDenied), as with a real permission mistake."""
        statement = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": f"arn:aws:s3:::{self.name}/{key}",
        }
        self.client.put_bucket_policy(
            Bucket=self.name,
            Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )

    def keys(self) -> set[str]:
        keys = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys


@pytest.fixture
def s3_proxy(s3_server, s3_bucket, settings):
    """The test's bucket, reached through a proxy the test can take down (tests/s3proxy.py)."""
    with S3Proxy(s3_server.endpoint_url) as proxy:
        options = {**settings.STORAGES["default"]["OPTIONS"], "endpoint_url": proxy.endpoint_url}
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**settings.STORAGES["default"], "OPTIONS": options},
        }
        yield proxy


@pytest.fixture(params=["local", "s3", "s3rver"])
def any_storage(request):
    """Run a test on local files, then on S3 over HTTP on moto ("s3") and on s3rver."""
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
    elif request.param == "s3rver":
        bucket_on(_server(request, "s3rver"), request.getfixturevalue("settings"))
    return request.param
