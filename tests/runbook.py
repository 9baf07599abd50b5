"""The README's production runbook, read from the README itself, so the runbook test and the
deploy-check test run exactly what an operator is told to run.

The README marks two fenced blocks in "Running it in production" with HTML comments (invisible
on GitHub): `<!-- runbook: environment -->` before the `export NAME=value` lines and
`<!-- runbook: steps -->` before the commands, one per line, in order.
"""

import datetime
import ipaddress
import os
import re
import secrets
import shlex
import shutil
from pathlib import Path

from tests.processes import ROOT

README = ROOT / "README.md"
NGINX_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin"

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
    now = datetime.datetime.now(datetime.timezone.utc)
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


# deploy/nginx/fmr.conf, run by Debian's nginx in front of gunicorn (the README's proxy).


def nginx_missing() -> str:
    if shutil.which("nginx", path=NGINX_PATH):
        return ""
    return "needs nginx (Debian's nginx-light; .ci/run installs it)"


def nginx_command(directory: Path, config: Path) -> list[str]:
    """nginx in the foreground with this configuration, its files in `directory`."""
    nginx = shutil.which("nginx", path=NGINX_PATH)
    return [nginx, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)]


def replace_once(text, old, new):
    assert text.count(old) == 1, f"deploy/nginx/fmr.conf should have {old!r} once"
    return text.replace(old, new)


def nginx_config(tmp: Path, *, http_port, https_port, upstream_port, cert, key) -> Path:
    """deploy/nginx/fmr.conf as it is, but for this machine's ports and certificate, inside the
    few main-context lines a packaged nginx.conf has."""
    site = (ROOT / "deploy" / "nginx" / "fmr.conf").read_text()
    site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = replace_once(site, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    site = replace_once(site, "/etc/ssl/fmr/fullchain.pem", str(cert))
    site = replace_once(site, "/etc/ssl/fmr/privkey.pem", str(key))
    site = replace_once(site, "127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
    (tmp / "site.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        + f"error_log {tmp / 'error.log'};\nevents {{}}\nhttp {{\n    access_log off;\n"
        + f"{temp}\n    uwsgi_temp_path {tmp / 'uwsgi'};\n    scgi_temp_path {tmp / 'scgi'};\n"
        + f"    include {tmp / 'site.conf'};\n}}\n"
    )
    return main
