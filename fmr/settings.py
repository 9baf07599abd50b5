"""Settings for fmr. Everything an operator changes comes from the environment (see README)."""

from datetime import timedelta
from pathlib import Path

from botocore.config import Config as BotocoreConfig
from django.core.exceptions import ImproperlyConfigured

from .env import (
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_origins,
    env_proxy_ssl_header,
    env_seconds,
    env_secret,
    env_share,
    env_str,
)
from .parsing import MAX_MINUTES

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The key signs sessions and password-reset links: anyone who knows it can forge an admin's
# session. This development key was once the silent default, so it is public; without DEBUG
# (that is, in production) every process refuses to start on it or on no key at all.
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-change-me"
SECRET_KEY = (env_str("DJANGO_SECRET_KEY") or "").strip() or DEVELOPMENT_SECRET_KEY
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is the public development key): set it to 50 or more "
        "random characters, e.g. the output of python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(50))', and keep it secret. DJANGO_DEBUG=true runs without "
        "one, for local development only."
    )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# --- HTTPS ----------------------------------------------------------------
# Without DEBUG the site is HTTPS-only unless the environment says otherwise: plain HTTP is
# redirected and the session and CSRF cookies never travel over it.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
# HSTS is opt-in: browsers that saw it refuse plain HTTP to the host (and, with subdomains, to
# every host below it) until it expires, and it cannot be withdrawn before then.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
# Behind a proxy that terminates TLS: the header it sets to "https" (X-Forwarded-Proto). Only
# when the proxy also strips that header from clients' requests, or anyone could claim HTTPS.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("DJANGO_SECURE_PROXY_SSL_HEADER")
CSRF_TRUSTED_ORIGINS = env_origins("DJANGO_CSRF_TRUSTED_ORIGINS")

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
if env_str("AWS_STORAGE_BUCKET_NAME") and env_str("DATABASE_URL") is None:
    raise ImproperlyConfigured(
        "AWS_STORAGE_BUCKET_NAME is set (files on S3) but DATABASE_URL is not: the embedded "
        "SQLite database knows none of that bucket's files. Set DATABASE_URL to the database "
        "that owns the bucket (postgres://user:password@host:5432/name)."
    )
DATABASES = {
    "default": database_from_url(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
USE_I18N = True
# Stored in UTC, shown and scheduled in Korean time.
USE_TZ = True
TIME_ZONE = "Asia/Seoul"

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# --- Object storage -------------------------------------------------------
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL")
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "ap-northeast-2")
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
AWS_S3_CLIENT_CONFIG = BotocoreConfig(
    signature_version="s3v4",
    connect_timeout=env_int("AWS_S3_CONNECT_TIMEOUT", 5, minimum=1, maximum=3600),
    read_timeout=env_int("AWS_S3_READ_TIMEOUT", 30, minimum=1, maximum=3600),
    retries={
        "mode": "standard",
        "total_max_attempts": env_int("AWS_S3_MAX_ATTEMPTS", 3, minimum=1, maximum=100),
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
JOB_TTL = env_seconds("JOB_TTL_SECONDS", timedelta(hours=24))
# Jobs deleted per transaction by the purge, chosen by measurement (README, "Scale"): larger
# batches pay off up to 2,000; 5,000 is as fast, with fewer transactions at a large backlog.
CLEANUP_BATCH_SIZE = env_int("CLEANUP_BATCH_SIZE", 5000, minimum=1)  # at most MAX_SIZE
# A scheduled run with more than one batch of backlog fans out into at most this many Celery
# subtasks; each purges for about CLEANUP_SUBTASK_SECONDS, then re-enqueues itself if needed.
CLEANUP_MAX_PARALLEL = env_int("CLEANUP_MAX_PARALLEL", 4, minimum=1, maximum=1000)
CLEANUP_SUBTASK_SECONDS = env_int("CLEANUP_SUBTASK_SECONDS", 60, minimum=1, maximum=24 * 3600)
# A run still marked running with no batch finished for this long died (SIGKILL, OOM, lost host);
# the next purge records it as abandoned. Far above any batch's duration, S3 retries included.
CLEANUP_STALE_RUN = timedelta(
    minutes=env_int("CLEANUP_STALE_RUN_MINUTES", 30, minimum=1, maximum=MAX_MINUTES)
)
# A file deletion storage has refused this many times is "stuck": shown and alerted by
# purge_status, still retried, but no longer failing every run; a person resolves it in the admin.
CLEANUP_STUCK_AFTER_ATTEMPTS = env_int("CLEANUP_STUCK_AFTER_ATTEMPTS", 10, minimum=1, maximum=1000)
# The models whose files the purge deletes (app_label.ModelName); see cleanup/file_models.py.
CLEANUP_FILE_MODELS = env_list("CLEANUP_FILE_MODELS", ["jobs.JobFile"])
# Bearer token for monitors reading /cleanup/status/ without a staff session; unset: staff only.
# Surrounding whitespace is dropped: a token read from a secret file ends with a newline.
CLEANUP_STATUS_TOKEN = env_secret("CLEANUP_STATUS_TOKEN")
# `reconcile_storage --delete` refuses (without --force) to delete more than this share of the
# objects past the grace period: a wrong or half-restored database would make most of them look
# orphaned. Real orphans are a few rolled-back uploads, never most of the bucket.
CLEANUP_RECONCILE_MAX_ORPHAN_SHARE = env_share("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", 0.5)

# --- Celery ---------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
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
CLEANUP_LOG_FORMAT = env_choice("CLEANUP_LOG_FORMAT", ["plain", "json"], "plain")
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
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "cleanup": {"level": env_str("CLEANUP_LOG_LEVEL", "INFO")},
    },
}
