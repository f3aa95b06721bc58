"""End-to-end fixtures: real `inferq` processes (`tests/helpers/processes.py`), started on free ports and
always stopped, and an S3 bucket of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import Processes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(log_dir=tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket on the moto server, emptied and removed after the test."""
    import uuid

    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)
