"""Every value an operator gives fmr (settings, flags, the status query string) parsed one way:
a bounded value or `InvalidValue` saying what was expected. ASCII digits only (int() also takes
"٥", "1_000", "+5"), every number bounded: none overflows a timedelta or a column inside a run."""

import os
import re
from argparse import ArgumentTypeError
from datetime import date, timedelta
from reprlib import repr as shown  # long values cut short, escapes visible
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The largest count the run records can hold (PositiveIntegerField): batch sizes, limits.
MAX_SIZE = 2_147_483_647
# Ten years: beyond any sensible duration, far inside what `now() - timedelta(...)` can hold.
MAX_MINUTES = 10 * 366 * 24 * 60
MAX_SECONDS = MAX_MINUTES * 60
# A day's bounds in any time zone must stay inside what datetime can hold.
FIRST_DAY, LAST_DAY = date(2, 1, 1), date(9998, 12, 31)

_NUMBER = {
    int: re.compile(r"-?[0-9]+"),
    float: re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"),
}
_TRUE = ["true", "1", "yes", "on"]


class InvalidValue(ValueError, ArgumentTypeError):
    """Not what it should be: the message says what was expected (argparse shows it too)."""


def _bounded(value, kind, minimum, maximum, expected):
    number = None
    if isinstance(value, str) and _NUMBER[kind].fullmatch(value.strip()):
        number = kind(value.strip())
    elif isinstance(value, int | kind) and not isinstance(value, bool):
        number = kind(value)
    # NaN fails every comparison, infinities the bounds.
    if number is None or not minimum <= number <= maximum:
        raise InvalidValue(f"expected {expected}, got {shown(value)}")
    return number


def parse_int(value, *, minimum: int = 0, maximum: int = MAX_SIZE, expected: str = "") -> int:
    expected = expected or f"a whole number from {minimum} to {maximum}"
    return _bounded(value, int, minimum, maximum, expected)


def parse_day(value) -> date:
    """A calendar day written exactly YYYY-MM-DD (fromisoformat also takes 20261101, 2026-W48-1)."""
    try:
        day = re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value) and date.fromisoformat(value)
    except ValueError:
        day = None
    if not day:
        raise InvalidValue(f"expected a calendar date as YYYY-MM-DD, got {shown(value)}")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidValue(f"expected a date from {FIRST_DAY} to {LAST_DAY}, got {shown(value)}")
    return day


def parse_minutes(value, *, expected: str = "") -> timedelta:
    expected = expected or f"a number of minutes, 0 or more (at most {MAX_MINUTES})"
    return timedelta(minutes=_bounded(value, float, 0, MAX_MINUTES, expected))


def parse_share(value) -> float:
    return _bounded(value, float, 0, 1, "a fraction from 0 to 1, like 0.5")


def parse_choice(value, *, choices) -> str:
    for choice in choices:
        if str(value).strip().lower() == choice.lower():
            return choice
    raise InvalidValue(f"expected one of {', '.join(choices)}, got {shown(value)}")


def parse_bool(value) -> bool:
    return parse_choice(value, choices=[*_TRUE, "false", "0", "no", "off"]) in _TRUE


def clean_secret(value) -> str | None:
    """A secret without surrounding whitespace (a secret file's newline); empty means unset."""
    return (str(value).strip() or None) if value is not None else None


def env(name, parse=str, default=None, **options):
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return parse(value, **options)
    except InvalidValue as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


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


def parse_list(value, **rule):
    """Comma-separated items, each matching `rule` (parse_matching's keywords) if one is given."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [parse_matching(item, **rule) for item in items] if rule else items


def parse_token(value):
    """Printable ASCII only (as HTTP headers carry); the value is never repeated."""
    if not re.fullmatch(r"[!-~]{32,}", value.strip()):
        raise InvalidValue(
            "expected 32 or more printable ASCII characters, e.g. the output of python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))' (not the README's placeholder)"
        )
    return value.strip()


def parse_database_url(url: str) -> dict:
    """No in-memory SQLite (sqlite://name): a purge would see no data. The URL is never repeated."""
    try:
        config = dj_database_url.parse(url)
    except ValueError as exc:  # UnknownSchemeError too
        reason = str(exc).split(" Did you")[0]  # without its advice and every scheme it knows
        raise InvalidValue(f"not a usable database URL: {reason}") from None
    if config["ENGINE"] not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise InvalidValue(f"names {config['ENGINE']}; use postgres://... or sqlite:///path")
    in_memory = config.get("HOST") or config["NAME"] == ":memory:"
    if config["ENGINE"].endswith("sqlite3") and in_memory:
        raise InvalidValue(
            "must name a SQLite file: sqlite:///relative/path.db or sqlite:////absolute/path.db "
            "(three slashes, then the path)"
        )
    return config
