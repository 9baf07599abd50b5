"""Reading settings from the environment, failing loudly on values that make no sense.

Numbers and flags are parsed by fmr/parsing.py, as the commands and the status endpoint parse
theirs: ASCII digits, bounded, one clear sentence naming the variable when a value is wrong.
"""

import os
import re
from datetime import timedelta

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .parsing import (
    MAX_SECONDS,
    MAX_SIZE,
    InvalidValue,
    clean_secret,
    parse_bool,
    parse_int,
    parse_share,
)

# The engines this project installs a driver for.
_ENGINES = {"django.db.backends.postgresql", "django.db.backends.sqlite3"}


def env_str(name, default=None):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_secret(name):
    """A token from the environment, without the newline a secret file ends with."""
    return clean_secret(os.environ.get(name))


def _parsed(name, parse, value, **kwargs):
    try:
        return parse(value, **kwargs)
    except InvalidValue as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_bool(name, default=False):
    value = env_str(name)
    return default if value is None else _parsed(name, parse_bool, value)


def env_choice(name, choices, default):
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_int(name, default, *, minimum=0, maximum=MAX_SIZE):
    value = env_str(name)
    if value is None:
        return default
    return _parsed(name, parse_int, value, minimum=minimum, maximum=maximum)


def env_share(name, default: float) -> float:
    value = env_str(name)
    return default if value is None else _parsed(name, parse_share, value)


def env_list(name, default):
    value = env_str(name)
    return default if value is None else [item.strip() for item in value.split(",") if item.strip()]


def env_origins(name):
    """Comma-separated origins, each with its scheme (https://admin.example), as Django wants."""
    origins = env_list(name, [])
    for origin in origins:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ImproperlyConfigured(
                f"{name} must list origins such as https://admin.example (scheme and host, no "
                f"path), got {origin!r}"
            )
    return origins


def env_proxy_ssl_header(name):
    """X-Forwarded-Proto -> ("HTTP_X_FORWARDED_PROTO", "https"): the request header a TLS proxy
    sets to "https", as SECURE_PROXY_SSL_HEADER wants it; None when unset."""
    header = env_str(name)
    if header is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", header):
        raise ImproperlyConfigured(
            f"{name} must be a header name such as X-Forwarded-Proto, got {header!r}"
        )
    return ("HTTP_" + header.upper().replace("-", "_"), "https")


def env_seconds(name, default: timedelta, *, maximum=MAX_SECONDS) -> timedelta:
    seconds = env_int(name, None, minimum=1, maximum=maximum)
    return default if seconds is None else timedelta(seconds=seconds)


def database_from_url(url: str) -> dict:
    """A DATABASES entry from postgres://user:pass@host:port/name or sqlite:///path.

    Parsed by dj-database-url; refused here: engines this project does not ship a driver for,
    and SQLite URLs that dj-database-url would quietly read as an in-memory database
    (`sqlite://name`, `sqlite://`), where a purge or a reconcile would see no data at all.
    """
    try:
        config = dj_database_url.parse(
            url,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0, maximum=MAX_SECONDS),
            conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
        )
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        # The message never repeats the URL: it may hold a password.
        reason = str(exc).split(". Following")[0]
        raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {reason}") from None
    if config["ENGINE"] not in _ENGINES:
        raise ImproperlyConfigured(
            f"DATABASE_URL names {config['ENGINE']}; use postgres://... or sqlite:///path"
        )
    if config["ENGINE"].endswith("sqlite3") and (
        config.get("HOST") or config["NAME"] == ":memory:"
    ):
        raise ImproperlyConfigured(
            "DATABASE_URL must name a SQLite file: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (three slashes, then the path)"
        )
    return config
