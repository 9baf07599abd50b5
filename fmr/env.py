"""Reading settings from the environment, failing loudly on values that make no sense."""

import os
from datetime import timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def env_str(name, default=None):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name, default=False):
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_int(name, default, *, minimum=None):
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(name, default):
    value = env_str(name)
    return default if value is None else [item.strip() for item in value.split(",") if item.strip()]


def env_seconds(name, default: timedelta) -> timedelta:
    seconds = env_int(name, None, minimum=1)
    return default if seconds is None else timedelta(seconds=seconds)


def database_from_url(url: str) -> dict:
    """Turn postgres://user:pass@host:port/name?opt=val or sqlite:///path into a DATABASES entry."""
    parts = urlsplit(url)
    engine = _ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgres:// or sqlite:///"
        )
    if engine.endswith("sqlite3"):
        # sqlite:///relative.db and sqlite:////absolute.db, as dj-database-url reads them.
        return {"ENGINE": engine, "NAME": unquote(parts.path[1:]) or ":memory:"}
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(parts.hostname or ""),
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }
