"""Settings for fmr. The environment carries deployment facts only (docs/settings.md lists every
variable); code configuration, such as which models hold the files, is set here."""

from datetime import timedelta
from pathlib import Path

from botocore.config import Config as BotocoreConfig
from django.core.exceptions import ImproperlyConfigured

from .parsing import (
    MAX_MINUTES,
    MAX_SECONDS,
    env,
    parse_bool,
    parse_choice,
    parse_database_url,
    parse_int,
    parse_list,
    parse_matching,
    parse_origins,
    parse_path,
    parse_share,
    parse_token,
    parse_url,
    refuse_code_setting,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env("DJANGO_DEBUG", parse_bool, False)
# The key signs sessions and password-reset links: anyone who knows it can forge an admin's
# session. This development key was once the silent default, so it is public; without DEBUG
# (that is, in production) every process refuses to start on it or on no key at all.
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", str.strip) or DEVELOPMENT_SECRET_KEY
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is the public development key): set it to 50 or more "
        "random characters, e.g. the output of python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(50))', and keep it secret. DJANGO_DEBUG=true runs without "
        "one, for local development only."
    )
ALLOWED_HOSTS = env("DJANGO_ALLOWED_HOSTS", parse_list, ["localhost", "127.0.0.1", "[::1]"])

# --- HTTPS ----------------------------------------------------------------
# Without DEBUG the site is HTTPS-only unless the environment says otherwise: plain HTTP is
# redirected and the session and CSRF cookies never travel over it.
SECURE_SSL_REDIRECT = env("DJANGO_SECURE_SSL_REDIRECT", parse_bool, not DEBUG)
SESSION_COOKIE_SECURE = env("DJANGO_SESSION_COOKIE_SECURE", parse_bool, not DEBUG)
CSRF_COOKIE_SECURE = env("DJANGO_CSRF_COOKIE_SECURE", parse_bool, not DEBUG)
# HSTS is opt-in: browsers that saw it refuse plain HTTP to the host (and, with subdomains, to
# every host below it) until it expires, and it cannot be withdrawn before then.
SECURE_HSTS_SECONDS = env("DJANGO_SECURE_HSTS_SECONDS", parse_int, 0, maximum=MAX_SECONDS)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", parse_bool, True)
SECURE_HSTS_PRELOAD = env("DJANGO_SECURE_HSTS_PRELOAD", parse_bool, True)
# Behind a proxy that terminates TLS: the header it sets to "https" (X-Forwarded-Proto). Only
# when the proxy also strips that header from clients' requests, or anyone could claim HTTPS.
_PROXY_HEADER = env(
    "DJANGO_SECURE_PROXY_SSL_HEADER",
    parse_matching,
    pattern=r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*",
    expected="a header name such as X-Forwarded-Proto",
)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _PROXY_HEADER.upper().replace("-", "_"), "https") if _PROXY_HEADER else None
)
CSRF_TRUSTED_ORIGINS = env("DJANGO_CSRF_TRUSTED_ORIGINS", parse_origins, [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "jobs",
    "cleanup",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and JS, from STATIC_ROOT after `collectstatic`, with DEBUG off too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fmr.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "fmr.wsgi.application"

# Object storage outlives any one machine; the embedded SQLite file does not know its files. A
# purge or a reconcile against it would see no row naming them (the reconciler would delete live
# files as orphans), so files on S3 need the database that owns them, named explicitly. The
# embedded default (SQLite and local files) is what `make demo` and `make test` use.
if env("AWS_STORAGE_BUCKET_NAME") and env("DATABASE_URL") is None:
    raise ImproperlyConfigured(
        "AWS_STORAGE_BUCKET_NAME is set (files on S3) but DATABASE_URL is not: the embedded "
        "SQLite database knows none of that bucket's files. Set DATABASE_URL to the database "
        "that owns the bucket (postgres://user:password@host:5432/name)."
    )
_DEFAULT_DATABASE = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": {
        **(env("DATABASE_URL", parse_database_url) or parse_database_url(_DEFAULT_DATABASE)),
        "CONN_MAX_AGE": env("DATABASE_CONN_MAX_AGE", parse_int, 0, maximum=MAX_SECONDS),
        "CONN_HEALTH_CHECKS": env("DATABASE_CONN_HEALTH_CHECKS", parse_bool, True),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = True
# Stored in UTC, shown and scheduled in Korean time.
USE_TZ = True
TIME_ZONE = "Asia/Seoul"
# The admin shows times with seconds and the zone (fmr/formats/en/formats.py).
FORMAT_MODULE_PATH = ["fmr.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", parse_path, BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", parse_path, BASE_DIR / "media"))

# --- Object storage -------------------------------------------------------
# S3's bucket naming rules, and botocore's for a region: anything else fails only later, inside
# a request, as a traceback.
AWS_STORAGE_BUCKET_NAME = env(
    "AWS_STORAGE_BUCKET_NAME",
    parse_matching,
    pattern=r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
    expected="an S3 bucket name (3-63 of a-z, 0-9, '.', '-')",
)
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", parse_url, schemes=("https", "http"))
AWS_S3_REGION_NAME = env(
    "AWS_S3_REGION_NAME",
    parse_matching,
    "ap-northeast-2",
    pattern=r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?",
    expected="a region name such as ap-northeast-2",
)
# Photos are private: never public-read, always signed URLs.
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_S3_FILE_OVERWRITE = False
# Bounded waits, so an S3 outage costs a purge seconds, not botocore's default of 60 s per attempt
# times 5 attempts: connect and read timeouts in seconds, and attempts per request (1 = no retry).
# The purge stops calling S3 for the rest of a run once a request has failed this way. This is
# django-storages' own setting; it replaces (does not merge with) its default Config, which only
# holds what this project leaves at botocore's defaults (addressing style, proxies). Links are
# signed with SigV4 in every region: their lifetime is X-Amz-Expires, capped at the job's
# (jobs.models.JobFieldFile); botocore would sign SigV2 links in us-east-1.
# DeleteObjects and version listings a purge keeps in flight at once (a far bucket answers each in
# a round trip or more); throttling lowers it for the run (cleanup/storage/s3.py).
CLEANUP_S3_CONCURRENCY = env("CLEANUP_S3_CONCURRENCY", parse_int, 8, minimum=1, maximum=64)
AWS_S3_CLIENT_CONFIG = BotocoreConfig(
    signature_version="s3v4",
    # botocore's pool holds 10 connections by default: never fewer than the requests in flight.
    max_pool_connections=max(10, CLEANUP_S3_CONCURRENCY),
    connect_timeout=env("AWS_S3_CONNECT_TIMEOUT", parse_int, 5, minimum=1, maximum=3600),
    read_timeout=env("AWS_S3_READ_TIMEOUT", parse_int, 30, minimum=1, maximum=3600),
    retries={
        "mode": "standard",
        "total_max_attempts": env("AWS_S3_MAX_ATTEMPTS", parse_int, 3, minimum=1, maximum=100),
    },
)

if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    # Compressed copies next to each file at collectstatic; no manifest of hashed names, so pages
    # render (in tests too) whether or not collectstatic has run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Retention ------------------------------------------------------------
# How long a job lives after creation; Job.expires_at is computed from it once, at creation.
JOB_TTL = timedelta(
    seconds=env("JOB_TTL_SECONDS", parse_int, 24 * 3600, minimum=1, maximum=MAX_SECONDS)
)
# Jobs deleted per transaction by the purge. Chosen by a batch-size sweep (bench/README.md,
# "Batch size"; `bench/purge_bench.py --sweep` runs it again): larger batches paid off up to
# 2,000, and 5,000 was as fast, with fewer transactions at a large backlog.
CLEANUP_BATCH_SIZE = env("CLEANUP_BATCH_SIZE", parse_int, 5000, minimum=1)  # at most MAX_SIZE
# A scheduled run with more than one batch of backlog fans out into at most this many Celery
# subtasks; each purges for about CLEANUP_SUBTASK_SECONDS, then re-enqueues itself if needed.
CLEANUP_MAX_PARALLEL = env("CLEANUP_MAX_PARALLEL", parse_int, 4, minimum=1, maximum=1000)
CLEANUP_SUBTASK_SECONDS = env("CLEANUP_SUBTASK_SECONDS", parse_int, 60, minimum=1, maximum=86400)
# A run still marked running with no batch finished for this long died (SIGKILL, OOM, lost host);
# the next purge records it as abandoned. Far above any batch's duration, S3 retries included.
CLEANUP_STALE_RUN = timedelta(
    minutes=env("CLEANUP_STALE_RUN_MINUTES", parse_int, 30, minimum=1, maximum=MAX_MINUTES)
)
# A file deletion storage has refused this many times is "stuck": shown and alerted by
# purge_status, still retried, but no longer failing every run; a person resolves it in the admin.
CLEANUP_STUCK_AFTER_ATTEMPTS = env(
    "CLEANUP_STUCK_AFTER_ATTEMPTS", parse_int, 10, minimum=1, maximum=1000
)
# The models whose files the purge deletes (app_label.ModelName), checked at startup by
# cleanup/file_models.py. Code, not a deployment fact: a model's files are part of its schema.
CLEANUP_FILE_MODELS = ["jobs.JobFile"]
refuse_code_setting("CLEANUP_FILE_MODELS", "fmr/settings.py")
# Bearer token for monitors reading /cleanup/status/ without a staff session; unset: staff only.
CLEANUP_STATUS_TOKEN = env("CLEANUP_STATUS_TOKEN", parse_token)
# `reconcile_storage --delete` refuses (without --force) to delete more than this share of the
# objects past the grace period: a wrong or half-restored database would make most of them look
# orphaned. Real orphans are a few rolled-back uploads, never most of the bucket.
CLEANUP_RECONCILE_MAX_ORPHAN_SHARE = env("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", parse_share, 0.5)

# --- Celery ---------------------------------------------------------------
# Required in production: a worker and a beat on a fallback broker would purge nothing, silently.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", parse_url, schemes=("redis", "rediss"))
if CELERY_BROKER_URL is None and not DEBUG:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is not set: set it to the Redis the worker and beat share, e.g. "
        "redis://redis.internal:6379/0 (DJANGO_DEBUG=true falls back to redis://127.0.0.1:6379/0)"
    )
CELERY_BROKER_URL = CELERY_BROKER_URL or "redis://127.0.0.1:6379/0"
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", parse_url, schemes=("redis", "rediss"))
CELERY_TIMEZONE = "Asia/Seoul"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
# A task that ends in FAILURE (a run that failed or left files pending) is still acknowledged,
# so acks_late never redelivers it in a loop; only a worker lost mid-task leaves its message
# for redelivery. (Celery's default, stated because the purge relies on it.)
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The beat row carries its own crontab timezone; Django-celery-beat reads times in TIME_ZONE.
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Logging --------------------------------------------------------------
# One handler, on the root logger, so every line (the purge's, Django's, Celery's) is written
# once; fmr/celery.py hands this configuration to the worker and beat instead of Celery's own.
# The cleanup modules log under "cleanup.*" with their fields in `extra` (cleanup/logs.py).
CLEANUP_LOG_FORMAT = env("CLEANUP_LOG_FORMAT", parse_choice, "plain", choices=["plain", "json"])
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# dictConfig, and Python warnings through the same handler (fmr/logconfig.py).
LOGGING_CONFIG = "fmr.logconfig.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "cleanup.logs.KeyValueFormatter"},
        "json": {"()": "cleanup.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": CLEANUP_LOG_FORMAT},
    },
    "root": {
        "handlers": ["console"],
        "level": env("LOG_LEVEL", parse_choice, "INFO", choices=_LEVELS),
    },
    "loggers": {
        "cleanup": {"level": env("CLEANUP_LOG_LEVEL", parse_choice, "INFO", choices=_LEVELS)},
    },
}
