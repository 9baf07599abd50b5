"""s3rver (npm, tests/s3rver/package.json) in its own process: an S3 implementation that checks
presigned links' signatures and expiry, and has no lifecycle configuration nor multipart listing
(it answers NotImplemented). `npm ci` installs it on first use, from the pinned lock file."""

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import boto3

from tests.s3server import free_port

HERE = Path(__file__).parent / "s3rver"
BINARY = HERE / "node_modules" / ".bin" / "s3rver"
# s3rver's own fixed credentials: it checks every signature against them.
CREDENTIALS = {"access_key": "S3RVER", "secret_key": "S3RVER", "region_name": "us-east-1"}


class S3rverServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fmr-s3rver-")
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.credentials = CREDENTIALS

    def start(self, timeout: float = 30):
        if not BINARY.exists():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True
            )
        env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
        self.process = subprocess.Popen(
            [BINARY, "-a", "127.0.0.1", "-p", str(self.port), "-d", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        client, probe = self.client(), f"ready-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + timeout
        while True:  # ready when it answers a create_bucket
            if self.process.poll() is not None:
                raise RuntimeError("s3rver exited at start")
            try:
                client.create_bucket(Bucket=probe)
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"s3rver did not start within {timeout}s") from None
                time.sleep(0.1)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
            region_name=CREDENTIALS["region_name"],
        )

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
