"""Bulk DeleteObjects (cleanup.storage) versus one DeleteObject request per key, on moto's server.

    python bench/s3_deletes.py --keys 10000 [--one-by-one-keys 1000]

Starts its own S3-compatible server on 127.0.0.1, uploads the keys, deletes them through
cleanup.storage.delete_names (the purge's path, settings from fmr.settings), uploads again and
deletes one request per key. Prints requests and keys/s for each. Loopback only: real S3 adds a
round trip per request, which widens the gap.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.s3server import S3Server, put_objects  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000, help="keys deleted in bulk")
    parser.add_argument(
        "--one-by-one-keys",
        type=int,
        default=1_000,
        help="keys deleted one request each (slow; the rate is what matters)",
    )
    args = parser.parse_args()
    if args.keys < 1 or args.one_by_one_keys < 1:
        parser.error("--keys and --one-by-one-keys must be positive")

    server = S3Server().start()
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        # Settings refuse a bucket without DATABASE_URL; this benchmark never touches a database.
        os.environ.setdefault(
            "DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='fmr-bench-')}/unused.sqlite3"
        )
        os.environ.update(
            DJANGO_SETTINGS_MODULE="fmr.settings",
            # A benchmark, not a site: production settings (DEBUG off) with a throwaway key.
            DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-only-key-not-secret"),
            AWS_STORAGE_BUCKET_NAME=bucket,
            AWS_S3_ENDPOINT_URL=server.endpoint_url,
            AWS_S3_REGION_NAME="us-east-1",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
        )
        import django

        django.setup()
        from cleanup import storage
        from cleanup.services.files import open_storage

        client = storage.get_storage().connection.meta.client
        client.create_bucket(Bucket=bucket)
        sent = []
        client.meta.events.register("before-send.s3", lambda event_name, **_: sent.append(1))

        def keys(n):
            return [f"jobs/{uuid.uuid4()}/original-{uuid.uuid4().hex}.png" for _ in range(n)]

        names = keys(args.keys)
        put_objects(client, bucket, names)
        sent.clear()
        started = time.perf_counter()
        outcome = storage.delete_names(names, session=open_storage())
        bulk = time.perf_counter() - started
        assert len(outcome.deleted) == args.keys and not outcome.failed, outcome.failed
        report("bulk DeleteObjects (cleanup.storage)", args.keys, len(sent), bulk)

        names = keys(args.one_by_one_keys)
        put_objects(client, bucket, names)
        sent.clear()
        started = time.perf_counter()
        for name in names:
            client.delete_object(Bucket=bucket, Key=name)
        single = time.perf_counter() - started
        report("one DeleteObject per key", args.one_by_one_keys, len(sent), single)
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        bulk_rate, single_rate = args.keys / bulk, args.one_by_one_keys / single
        print(
            f"bulk is {bulk_rate / single_rate:.0f}x faster; {args.keys} keys one by one would "
            f"take ~{args.keys / single_rate:.1f}s and {args.keys} requests"
        )
    finally:
        server.stop()


def report(label, keys, requests, seconds):
    print(
        f"{label:<40} keys={keys:>6}  requests={requests:>6}  seconds={seconds:7.2f}  "
        f"keys/s={keys / seconds:>8.0f}"
    )


if __name__ == "__main__":
    main()
