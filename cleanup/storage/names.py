"""One canonical name: a stored name as the storage backend itself resolves it.

Storage normalises the names it is given (django-storages: `clean_name` then
`S3Storage._normalize_name`; FileSystemStorage: `path()`, an absolute, normalised path), while
rows hold whatever was written into them. So `jobs//A/p.png`, `/jobs/A/p.png`,
`jobs/./A/p.png`, `jobs/A/x/../p.png` and (on S3) `jobs\\A\\p.png` are all the key
`jobs/A/p.png`, and `jobs/../static/app.css` is a key outside the upload prefix. Comparing raw
names let an expired row delete a live file, and a crafted one delete anything in the bucket.

Two rules follow:

- `refusal(name, storage)`: a name is sent to storage only if it already is the canonical key of
  an object under the upload prefix: no control characters, backslashes, leading '/', empty,
  '.' or '..' segments, and the backend maps it to itself. Anything else is refused with a
  reason (never the name: names are users' data), and never sent.
- `addresses(name, storage)`: the canonical keys a stored name may reach, in the backend's
  reading and in S3's (which also turns backslashes into '/' and drops leading slashes), so
  a live row protects its object whichever way it is spelled. Over-approximating here only ever
  keeps a file.

Rows whose names are not canonical are rare (legacy data, writes that bypassed validation);
`NON_CANONICAL_PATTERN` finds them in SQL so a reference check stays one query per field.
"""

import os
import posixpath
import re

from django.core.exceptions import SuspiciousOperation
from storages.utils import clean_name

from jobs.models import UPLOAD_PREFIX

from .outcome import UnsupportedStorage
from .s3 import is_s3

# C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Names whose canonical form may differ from themselves: a backslash, a leading '/', an empty
# segment ('//', a trailing '/'), a '.' or '..' segment. A superset is fine (each hit is
# canonicalised in Python); missing a spelling is not. Valid in PostgreSQL's and Python's regex.
NON_CANONICAL_PATTERN = r"\\|^/|//|/$|(^|/)\.\.?(/|$)"

# Reasons, fixed words (counted per reason by purge_status; no name ever goes into one).
CONTROL_CHARACTER = "control character in the name"
BACKSLASH = "backslash in the name"
ABSOLUTE = "absolute path"
EMPTY_SEGMENT = "empty path segment ('//' or a trailing '/')"
DOT_SEGMENT = "'.' or '..' path segment"
OUTSIDE_PREFIX = f"not under the upload prefix {UPLOAD_PREFIX}/"
NOT_CANONICAL = "not the name storage resolves it to"
OUTSIDE_STORAGE = "resolves outside the storage"
SYMLINK_OUT = f"real path leaves MEDIA_ROOT/{UPLOAD_PREFIX}/ (a symlink)"


# A canonical key under the prefix, in one match: segments of anything but '/', backslashes and
# controls, none of them '.' or '..'. Each backend maps such a name to itself (clean_name and
# _normalize_name, or FileSystemStorage.path, change nothing in it: tests/test_names.py checks
# that), so the common case costs one regex match per name, not a trip through the backend.
_CANONICAL = re.compile(
    rf"{re.escape(UPLOAD_PREFIX)}(?:/(?!\.\.?(?:/|$))[^/\\\x00-\x1f\x7f-\x9f]+)+"
)


def refusal(name, storage) -> str:
    """Why `name` must not be sent to `storage`; "" when it is a canonical key under the prefix."""
    if isinstance(name, str) and _CANONICAL.fullmatch(name):
        return ""
    return _reason(name, storage)


def _reason(name, storage) -> str:
    if not isinstance(name, str) or not name:
        return OUTSIDE_PREFIX
    if _CONTROL.search(name):
        return CONTROL_CHARACTER
    if "\\" in name:
        return BACKSLASH
    if name.startswith("/"):
        return ABSOLUTE
    segments = name.split("/")
    if "" in segments:
        return EMPTY_SEGMENT
    if "." in segments or ".." in segments:
        return DOT_SEGMENT
    if len(segments) < 2 or segments[0] != UPLOAD_PREFIX:
        return OUTSIDE_PREFIX
    try:
        resolved = canonical_name(name, storage)
    except (SuspiciousOperation, ValueError):
        return OUTSIDE_STORAGE
    return "" if resolved == name else NOT_CANONICAL


def canonical_name(name: str, storage) -> str:
    """The storage-relative name `storage` resolves `name` to (the S3 key without the storage's
    key prefix; the path under MEDIA_ROOT). Raises SuspiciousOperation when it leaves the storage.
    """
    if is_s3(storage):
        key = storage._normalize_name(clean_name(name))
        location = (storage.location or "").strip("/")
        if not location:
            return key
        if not key.startswith(location + "/"):
            raise SuspiciousOperation("outside the storage's key prefix")
        return key[len(location) + 1 :]
    if hasattr(storage, "path"):
        root = os.path.abspath(storage.location)
        return os.path.relpath(storage.path(name), root).replace(os.sep, "/")
    raise UnsupportedStorage(f"{type(storage).__qualname__} cannot resolve names")


def addresses(name, storage) -> set[str]:
    """The canonical keys under the upload prefix that a stored name may reach."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return set()
    readings = {name, posixpath.normpath(name.replace("\\", "/")).lstrip("/")}
    keys = set()
    for reading in readings:
        try:
            key = canonical_name(reading, storage)
        except (SuspiciousOperation, ValueError):
            continue
        if key.startswith(UPLOAD_PREFIX + "/"):
            keys.add(key)
    return keys
