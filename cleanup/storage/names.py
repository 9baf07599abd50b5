"""The other spellings of a key: what a live row whose name breaks the upload-name rule holds.

A name that keeps to the rule (jobs.models.UploadName, an allow-list) is its own key on every
storage: the S3 key is the storage's location, '/' and the name; the local path, MEDIA_ROOT/name.
Only such names are ever sent. But rows written before the rule, or around model validation, may
hold other spellings that storage normalises onto an allowed key when it writes the file:
`jobs//A/p.png`, `/jobs/A/p.png`, `jobs/./A/p.png`, `jobs/A/x/../p.png` and, on S3 through
django-storages, `jobs\\A\\p.png` all are `jobs/A/p.png`. A live row so spelled must still protect
that key, so:

- `addresses(name)`: the keys such a name may reach, read every way storage may read it.
  Over-approximating here only ever keeps a file.
- `NON_CANONICAL_PATTERN` finds those rows in SQL, so a reference check stays one query per field;
  migration 0008's partial indexes have exactly this condition (it imports it from here), so
  changing it needs a migration that rebuilds them.
"""

import posixpath

# A backslash, a leading '/', an empty segment ('//', a trailing '/'), a '.' or '..' segment:
# the spellings storage normalises. Valid in PostgreSQL's and Python's regex.
NON_CANONICAL_PATTERN = r"\\|^/|//|/$|(^|/)\.\.?(/|$)"

# A reason in fixed words (counted per reason by purge_status; no name ever goes into one).
SYMLINK_OUT = "real path leaves the upload directory under MEDIA_ROOT (a symlink)"


def addresses(name) -> set[str]:
    """The keys a stored name may reach: as written, path-normalised, and with backslashes read
    as '/', each without a leading '/'."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return set()
    readings = {name, posixpath.normpath(name), posixpath.normpath(name.replace("\\", "/"))}
    return {reading.lstrip("/") for reading in readings}
