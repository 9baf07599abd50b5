"""An S3-compatible server (moto's server mode) in its own process, spoken to over HTTP."""

import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
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


def put_objects(client, bucket: str, keys, body: bytes = b"\x89PNG\r\n\x1a\n", threads: int = 8):
    """Upload one small object per key, several at a time: thousands of PUTs in seconds."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        # list(): surface the first upload error here, not silently in a worker thread.
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
