"""Every number and flag an operator gives fmr, parsed one way: settings (fmr/env.py), command
flags (fmr/commands.py) and the status endpoint's query string all call these.

Pure functions: text in, a bounded value out, or `InvalidValue` with a sentence that says what
was expected. ASCII digits only (Python's int() and float() also take "٥", "１０", "1_000",
"+5" and " 5 "; a value that means something else to the next tool is refused here), and every
number has an upper bound, so no value can overflow a timedelta, a datetime or a database column
later, inside a run, as a traceback.
"""

import math
import re
from datetime import date, timedelta

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
