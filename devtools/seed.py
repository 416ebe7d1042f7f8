"""Upload the sample documents (`samples/<bucket>/<key>`) to S3, creating the buckets first.

    python -m devtools.seed [--samples-dir samples]

The CLI builds a plain `boto3.client("s3")`, so the endpoint and credentials come from the standard AWS_*
variables (see `python -m devtools.local_s3 env`).
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

DEFAULT_BUCKETS = ("landing", "docs", "bronze")
DEFAULT_SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
# Fixed types for the formats we ingest: the mimetypes module depends on the machine's mime.types and knows
# neither .ndjson nor .parquet.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown",
    ".txt": "text/plain",
}


def content_type_for(path: Path) -> str:
    """The ContentType to store for a sample file, guessed from its extension."""
    suffix = path.suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def ensure_bucket(s3_client: Any, bucket: str) -> None:
    """Create `bucket` unless it already exists."""
    try:
        s3_client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    try:
        s3_client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        # Lost a race with another seeder: the bucket is there, which is all we wanted.
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise


def sample_files(bucket_dir: Path) -> list[tuple[str, Path]]:
    """(key, path) for every file under `bucket_dir`, keys relative with `/`, sorted; dotfiles skipped."""
    files = []
    for path in sorted(bucket_dir.rglob("*")):
        relative = path.relative_to(bucket_dir)
        # .DS_Store and editor droppings are not documents.
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            # macOS may hand back decomposed (NFD) names; NFC gives a file the same key on every OS.
            files.append((unicodedata.normalize("NFC", relative.as_posix()), path))
    return files


def seed(
    s3_client: Any, samples_dir: str | os.PathLike[str], buckets: Iterable[str] = DEFAULT_BUCKETS
) -> list[tuple[str, str]]:
    """Create `buckets` if missing and upload `samples_dir/<bucket>/**` to them; return the (bucket, key)s."""
    uploaded: list[tuple[str, str]] = []
    for bucket in buckets:
        ensure_bucket(s3_client, bucket)
        bucket_dir = Path(samples_dir) / bucket
        if not bucket_dir.is_dir():
            continue
        for key, path in sample_files(bucket_dir):
            s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type_for(path))
            uploaded.append((bucket, key))
    return uploaded


def main(argv: list[str] | None = None) -> int:
    """CLI: seed the S3 service that the standard AWS_* environment points at."""
    parser = argparse.ArgumentParser(prog="python -m devtools.seed")
    parser.add_argument("--samples-dir", type=Path, default=DEFAULT_SAMPLES_DIR)
    parser.add_argument(
        "--bucket", action="append", dest="buckets", help=f"repeatable (default: {' '.join(DEFAULT_BUCKETS)})"
    )
    args = parser.parse_args(argv)
    client = boto3.client("s3")
    uploaded = seed(client, args.samples_dir, args.buckets or DEFAULT_BUCKETS)
    for bucket, key in uploaded:
        print(f"s3://{bucket}/{key}")
    print(f"seeded {len(uploaded)} objects into {client.meta.endpoint_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
