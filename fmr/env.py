"""Deployment facts from the environment: every read goes through `env()`, which parses the value
with a function of fmr/parsing.py or stops with one sentence naming the variable. (django-environ
was weighed: its int() takes "٥" and "1_000" and bounds nothing, so it would need these same
parsers around it.)
"""

import os
import re
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .parsing import InvalidValue, shown


def env(name, parse=str, default=None, **options):
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return parse(value, **options)
    except InvalidValue as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def refuse_code_setting(name, where):
    """A setting that moved from the environment into code: its old variable, whatever its value
    (a blank one once meant "none"), must not be silently ignored."""
    if name in os.environ:
        raise ImproperlyConfigured(
            f"{name} is code configuration now, set in {where}, not in the environment: "
            f"remove the {name} variable"
        )


def parse_matching(value, *, pattern, expected):
    if not re.fullmatch(pattern, value, flags=re.ASCII):
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    return value


def parse_url(value, *, schemes):
    """A URL with one of `schemes` and a host; the value is never repeated (a password)."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in schemes and parts.hostname and (parts.port or 1)
    except ValueError:
        valid = False
    if not valid or not value.isascii() or value != value.strip():
        raise InvalidValue(f"expected a URL such as {schemes[0]}://host:port/...")
    return value


def parse_origins(value):
    """Comma-separated origins, each with its scheme (https://admin.example), as Django wants."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        parse_matching(item, pattern=r"https?://[^/\s]+", expected="https://host (no path)")
    return items


def parse_list(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_path(value):
    if not value.startswith("/") or len(value) > 4096 or "\x00" in value:
        raise InvalidValue(f"expected an absolute path (/srv/...), got {shown(value)}")
    return value


def parse_token(value):
    """A bearer token or key: surrounding whitespace (a secret file's newline) dropped, then 32 or
    more printable ASCII characters. A placeholder ("...") or a non-ASCII token, which no HTTP
    header can carry, is refused. The value is never repeated."""
    if not re.fullmatch(r"[!-~]{32,}", value.strip()):
        raise InvalidValue(
            "expected 32 or more printable ASCII characters, e.g. the output of python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))' (not the README's placeholder)"
        )
    return value.strip()


def parse_database_url(url: str) -> dict:
    """A DATABASES entry from postgres://user:pass@host:port/name or sqlite:///path.

    Parsed by dj-database-url; refused here: engines this project does not ship a driver for,
    and SQLite URLs that dj-database-url would quietly read as an in-memory database
    (`sqlite://name`, `sqlite://`), where a purge or a reconcile would see no data at all.
    """
    try:
        config = dj_database_url.parse(url)
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        # The message never repeats the URL: it may hold a password.
        raise InvalidValue(
            f"not a usable database URL: {str(exc).split('. Following')[0]}"
        ) from None
    if config["ENGINE"] not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise InvalidValue(f"names {config['ENGINE']}; use postgres://... or sqlite:///path")
    if config["ENGINE"].endswith("sqlite3") and (
        config.get("HOST") or config["NAME"] == ":memory:"
    ):
        raise InvalidValue(
            "must name a SQLite file: sqlite:///relative/path.db or sqlite:////absolute/path.db "
            "(three slashes, then the path)"
        )
    return config
