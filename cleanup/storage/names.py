"""The other spellings of a key (`jobs//A/p.png`, `/jobs/A/p.png`, (S3) `jobs\\A\\p.png`): a live
row holding one must still protect the key. Migration 0008's partial indexes import
NON_CANONICAL_PATTERN: changing it needs a migration that rebuilds them."""

import posixpath

# A backslash, a leading '/', an empty segment ('//', a trailing '/'), a '.' or '..' segment.
# Valid in PostgreSQL's and Python's regex.
NON_CANONICAL_PATTERN = r"\\|^/|//|/$|(^|/)\.\.?(/|$)"

# A reason in fixed words (counted per reason by purge_status; no name ever goes into one).
SYMLINK_OUT = "real path leaves the upload directory under MEDIA_ROOT (a symlink)"


def addresses(name) -> set[str]:
    """The keys a stored name may reach (an over-approximation: that only ever keeps a file)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return set()
    readings = {name, posixpath.normpath(name), posixpath.normpath(name.replace("\\", "/"))}
    return {reading.lstrip("/") for reading in readings}
