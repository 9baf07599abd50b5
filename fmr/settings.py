"""Settings for fmr: the environment carries deployment facts only (docs/settings.md)."""

import os
from datetime import timedelta
from pathlib import Path

from botocore.config import Config as BotocoreConfig
from django.core.exceptions import ImproperlyConfigured

from . import parsing as p
from .parsing import MAX_MINUTES, MAX_SECONDS, env

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env("DJANGO_DEBUG", p.parse_bool, False)
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", str.strip) or DEVELOPMENT_SECRET_KEY
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is unset or the public development key: set 50+ secret random "
        "characters (python3 -c 'import secrets; print(secrets.token_urlsafe(50))'). "
        "DJANGO_DEBUG=true runs without one, for local development only."
    )
ALLOWED_HOSTS = env("DJANGO_ALLOWED_HOSTS", p.parse_list, ["localhost", "127.0.0.1", "[::1]"])

SECURE_SSL_REDIRECT = env("DJANGO_SECURE_SSL_REDIRECT", p.parse_bool, not DEBUG)
SESSION_COOKIE_SECURE = env("DJANGO_SESSION_COOKIE_SECURE", p.parse_bool, not DEBUG)
CSRF_COOKIE_SECURE = env("DJANGO_CSRF_COOKIE_SECURE", p.parse_bool, not DEBUG)
SECURE_HSTS_SECONDS = env("DJANGO_SECURE_HSTS_SECONDS", p.parse_int, 0, maximum=MAX_SECONDS)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", p.parse_bool, True)
SECURE_HSTS_PRELOAD = env("DJANGO_SECURE_HSTS_PRELOAD", p.parse_bool, True)
_HEADER = {"pattern": r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", "expected": "a header (X-Forwarded-Proto)"}
_PROXY = env("DJANGO_SECURE_PROXY_SSL_HEADER", p.parse_matching, **_HEADER)
SECURE_PROXY_SSL_HEADER = _PROXY and ("HTTP_" + _PROXY.upper().replace("-", "_"), "https")
_ORIGIN = {"pattern": r"https?://[^/\s]+", "expected": "https://host (no path)"}
CSRF_TRUSTED_ORIGINS = env("DJANGO_CSRF_TRUSTED_ORIGINS", p.parse_list, [], **_ORIGIN)

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
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "fmr.wsgi.application"

# Against the embedded SQLite the reconciler would delete the bucket's live files as orphans.
if env("AWS_STORAGE_BUCKET_NAME") and env("DATABASE_URL") is None:
    raise ImproperlyConfigured(
        "AWS_STORAGE_BUCKET_NAME is set but DATABASE_URL is not: the embedded SQLite knows none "
        "of the bucket's files. Set DATABASE_URL to the database that owns the bucket."
    )
_DEFAULT_DATABASE = p.parse_database_url(f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": {
        **env("DATABASE_URL", p.parse_database_url, _DEFAULT_DATABASE),
        "CONN_MAX_AGE": env("DATABASE_CONN_MAX_AGE", p.parse_int, 0, maximum=MAX_SECONDS),
        "CONN_HEALTH_CHECKS": env("DATABASE_CONN_HEALTH_CHECKS", p.parse_bool, True),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "Asia/Seoul"
# The admin shows times with seconds and the zone.
FORMAT_MODULE_PATH = ["fmr.formats"]

STATIC_URL = "static/"
_PATH = {"pattern": r"/[^\x00]{0,4095}", "expected": "an absolute path (/srv/...)"}
STATIC_ROOT = Path(env("STATIC_ROOT", p.parse_matching, BASE_DIR / "staticfiles", **_PATH))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", p.parse_matching, BASE_DIR / "media", **_PATH))

_BUCKET = {
    "pattern": r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
    "expected": "an S3 bucket name (3-63 of a-z, 0-9, '.', '-')",
}
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", p.parse_matching, **_BUCKET)
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", p.parse_url, schemes=("https", "http"))
_REGION = {"pattern": r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", "expected": "a region"}
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", p.parse_matching, "ap-northeast-2", **_REGION)
# Photos are private: never public-read, always signed URLs.
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_S3_FILE_OVERWRITE = False
CLEANUP_S3_CONCURRENCY = env("CLEANUP_S3_CONCURRENCY", p.parse_int, 8, minimum=1, maximum=64)
# Bounded waits: an S3 outage costs a purge seconds, not botocore's 60 s per attempt times 5.
_ATTEMPTS = env("AWS_S3_MAX_ATTEMPTS", p.parse_int, 3, minimum=1, maximum=100)
AWS_S3_CLIENT_CONFIG = BotocoreConfig(
    signature_version="s3v4",  # botocore signs SigV2 in us-east-1; links last X-Amz-Expires
    # botocore's pool holds 10 connections by default: never fewer than the requests in flight.
    max_pool_connections=max(10, CLEANUP_S3_CONCURRENCY),
    connect_timeout=env("AWS_S3_CONNECT_TIMEOUT", p.parse_int, 5, minimum=1, maximum=3600),
    read_timeout=env("AWS_S3_READ_TIMEOUT", p.parse_int, 30, minimum=1, maximum=3600),
    retries={"mode": "standard", "total_max_attempts": _ATTEMPTS},
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # No manifest of hashed names, so pages render whether or not collectstatic has run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}

JOB_TTL = timedelta(
    seconds=env("JOB_TTL_SECONDS", p.parse_int, 24 * 3600, minimum=1, maximum=MAX_SECONDS)
)
CLEANUP_BATCH_SIZE = env("CLEANUP_BATCH_SIZE", p.parse_int, 1000, minimum=1)  # at most MAX_SIZE
CLEANUP_MAX_PARALLEL = env("CLEANUP_MAX_PARALLEL", p.parse_int, 4, minimum=1, maximum=1000)
CLEANUP_SUBTASK_SECONDS = env("CLEANUP_SUBTASK_SECONDS", p.parse_int, 60, minimum=1, maximum=86400)
CLEANUP_STALE_RUN = timedelta(
    minutes=env("CLEANUP_STALE_RUN_MINUTES", p.parse_int, 30, minimum=1, maximum=MAX_MINUTES)
)
CLEANUP_STUCK_AFTER_ATTEMPTS = env(
    "CLEANUP_STUCK_AFTER_ATTEMPTS", p.parse_int, 10, minimum=1, maximum=1000
)
CLEANUP_FILE_MODELS = ["jobs.JobFile"]
if "CLEANUP_FILE_MODELS" in os.environ:
    raise ImproperlyConfigured(
        "CLEANUP_FILE_MODELS is code configuration now, set in fmr/settings.py, not in the "
        "environment: remove the CLEANUP_FILE_MODELS variable"
    )
CLEANUP_STATUS_TOKEN = env("CLEANUP_STATUS_TOKEN", p.parse_token)
# A wrong or half-restored database makes most objects look orphaned; real orphans are a few.
CLEANUP_RECONCILE_MAX_ORPHAN_SHARE = env("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", p.parse_share, 0.5)

_REDIS = {"schemes": ("redis", "rediss")}
_FALLBACK_BROKER = "redis://127.0.0.1:6379/0" if DEBUG else None
CELERY_BROKER_URL = env("CELERY_BROKER_URL", p.parse_url, _FALLBACK_BROKER, **_REDIS)
if CELERY_BROKER_URL is None:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is not set: set it to the Redis the worker and beat share, e.g. "
        "redis://redis.internal:6379/0 (DJANGO_DEBUG=true falls back to redis://127.0.0.1:6379/0)"
    )
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", p.parse_url, **_REDIS)
CELERY_TIMEZONE = "Asia/Seoul"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# One handler, on the root logger, so every line (the purge's, Django's, Celery's) is written once.
CLEANUP_LOG_FORMAT = env("CLEANUP_LOG_FORMAT", p.parse_choice, "plain", choices=["plain", "json"])
_LEVELS = {"choices": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]}
LOGGING_CONFIG = "fmr.logconfig.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "cleanup.logs.KeyValueFormatter"},
        "json": {"()": "cleanup.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": CLEANUP_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", p.parse_choice, "INFO", **_LEVELS)},
    "loggers": {"cleanup": {"level": env("CLEANUP_LOG_LEVEL", p.parse_choice, "INFO", **_LEVELS)}},
}
