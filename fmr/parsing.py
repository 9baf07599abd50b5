"""Every value an operator gives fmr, parsed one way: settings (every read goes through `env()`),
command flags (fmr/commands.py) and the status endpoint's query string all call these.
(django-environ was weighed: its int() takes "٥" and "1_000" and bounds nothing, so it would need
these same parsers around it.)

Pure functions: text in, a bounded value out, or `InvalidValue` with a sentence that says what
was expected. ASCII digits only (Python's int() and float() also take "٥", "１０", "1_000",
"+5" and " 5 "; a value that means something else to the next tool is refused here), and every
number has an upper bound, so no value can overflow a timedelta, a datetime or a database column
later, inside a run, as a traceback.
"""

import math
import os
import re
from datetime import date, timedelta
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The largest count the run records can hold (PositiveIntegerField): batch sizes, limits.
MAX_SIZE = 2_147_483_647
# Ten years: far beyond any sensible grace, overdue limit or lifetime, and far inside what
# `datetime.now() - timedelta(...)` can represent.
MAX_MINUTES = 10 * 366 * 24 * 60
MAX_SECONDS = MAX_MINUTES * 60

FIRST_DAY, LAST_DAY = date(2, 1, 1), date(9998, 12, 31)

_INTEGER = re.compile(r"-?[0-9]+")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class InvalidValue(ValueError):
    """A value that is not what it should be; the message says what was expected."""


def shown(value) -> str:
    """A refused value as a message quotes it: at most 40 characters, escapes visible."""
    text = repr(value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value)
    return text[:60]


def parse_int(value, *, minimum: int = 0, maximum: int = MAX_SIZE, expected: str = "") -> int:
    """A whole number from `minimum` to `maximum`, written in ASCII digits."""
    expected = expected or f"a whole number from {minimum} to {maximum}"
    if isinstance(value, bool):
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    if not minimum <= number <= maximum:
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    return number


def parse_decimal(value, *, minimum: float, maximum: float, expected: str = "") -> float:
    """A finite number from `minimum` to `maximum` (fractions allowed), in ASCII digits."""
    expected = expected or f"a number from {minimum:g} to {maximum:g}"
    if isinstance(value, bool):
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    return number


def parse_day(value) -> date:
    """A calendar day written exactly YYYY-MM-DD (date.fromisoformat would also take 20261101
    or 2026-W48-1)."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise InvalidValue(f"expected a date as YYYY-MM-DD, got {shown(value)}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"{shown(value)} is not a calendar date (YYYY-MM-DD)") from None
    # A day's bounds in any time zone must stay inside what datetime can hold.
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidValue(f"expected a date from {FIRST_DAY} to {LAST_DAY}, got {shown(value)}")
    return day


def parse_minutes(value, *, expected: str = "") -> timedelta:
    """A number of minutes, 0 up to MAX_MINUTES (fractions allowed), as a timedelta."""
    expected = expected or f"a number of minutes, 0 or more (at most {MAX_MINUTES})"
    return timedelta(
        minutes=parse_decimal(value, minimum=0, maximum=MAX_MINUTES, expected=expected)
    )


def parse_share(value) -> float:
    """A fraction from 0 to 1 (0.5 is half)."""
    return parse_decimal(value, minimum=0, maximum=1, expected="a fraction from 0 to 1, like 0.5")


def parse_choice(value, *, choices) -> str:
    """One of `choices`, in any letter case (returned as spelt in `choices`)."""
    for choice in choices:
        if str(value).strip().lower() == choice.lower():
            return choice
    raise InvalidValue(f"expected one of {', '.join(choices)}, got {shown(value)}")


def parse_bool(value) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue(f"expected true or false, got {shown(value)}")


def clean_secret(value) -> str | None:
    """A token or secret as read from the environment or a secret file: surrounding whitespace
    (the newline a file ends with) is not part of it; nothing left means unset."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


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
    items = parse_list(value)
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
