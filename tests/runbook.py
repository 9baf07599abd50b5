"""The README's production runbook, read from the README itself, so the runbook test and the
deploy-check test run exactly what an operator is told to run.

The README marks two fenced blocks in "Running it in production" with HTML comments (invisible
on GitHub): `<!-- runbook: environment -->` before the `export NAME=value` lines and
`<!-- runbook: steps -->` before the commands, one per line, in order.
"""

import datetime
import ipaddress
import re
import secrets
import shlex
from pathlib import Path

from tests.processes import ROOT

README = ROOT / "README.md"

# What differs from one installation to the next: the test puts its own services, names and
# secrets here. Everything else in the README's environment is used as written.
SITE_SPECIFIC = frozenset(
    {
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "AWS_STORAGE_BUCKET_NAME",
        "AWS_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "STATIC_ROOT",
        "CLEANUP_STATUS_TOKEN",
    }
)


def _block_after(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- runbook: {marker} -->\s*```[a-z]*\n(.*?)\n```", text, re.DOTALL)
    assert match, f"README.md has no fenced block after <!-- runbook: {marker} -->"
    return match.group(1)


def environment() -> dict[str, str]:
    """The README's production environment block, NAME -> value, in order."""
    env = {}
    for line in _block_after("environment").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "export", f"not an export line in the environment block: {line!r}"
        for assignment in words[1:]:
            name, sep, value = assignment.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), assignment
            env[name] = value
    return env


def steps() -> list[list[str]]:
    """The README's commands, in order, each split as a shell would (comments dropped)."""
    return [
        words
        for line in _block_after("steps").splitlines()
        if (words := shlex.split(line, comments=True))
    ]


def site_environment(**site) -> dict[str, str]:
    """The README's environment with this site's values; every site-specific name must be given,
    and every name given must be one the README sets."""
    readme = environment()
    missing = SITE_SPECIFIC - set(readme)
    assert not missing, f"the README's production environment does not set {sorted(missing)}"
    assert set(site) == SITE_SPECIFIC, sorted(set(site) ^ SITE_SPECIFIC)
    return {**readme, **{name: str(value) for name, value in site.items()}}


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def throwaway_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the TLS a proxy would terminate in production."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
