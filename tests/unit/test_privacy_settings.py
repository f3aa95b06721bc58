"""Privacy settings: retention days (INFERQ_RETENTION_DAYS) and S3 server-side encryption (INFERQ_S3_SSE)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from inferq.shared.retention import delete_after
from inferq.shared.settings import MAX_RETENTION_DAYS, Settings, SettingsError

S3 = {"INFERQ_STORAGE_URL": "s3://bucket/prefix"}


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), **env})


def test_data_is_kept_thirty_days_and_not_encrypted_by_default(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.retention_days == 30
    assert (s.s3_sse, s.s3_sse_kms_key_id) == (None, None)


@pytest.mark.parametrize(
    ("raw", "days"), [("7", 7), (" 365 ", 365), ("0", 0), ("none", 0), ("NONE", 0), ("never", 0), ("", 30)]
)
def test_retention_days_are_read_and_zero_or_none_keeps_data(tmp_path: Path, raw: str, days: int) -> None:
    assert settings(tmp_path, INFERQ_RETENTION_DAYS=raw).retention_days == days


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("a week", "must be an integer"),
        ("1.5", "must be an integer"),
        ("-1", "must be >= 0"),
        (str(MAX_RETENTION_DAYS + 1), f"at most {MAX_RETENTION_DAYS}"),
    ],
)
def test_bad_retention_days_are_refused_naming_the_variable(tmp_path: Path, raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings(tmp_path, INFERQ_RETENTION_DAYS=raw)
    assert "INFERQ_RETENTION_DAYS" in str(e.value) and says in str(e.value)


@pytest.mark.parametrize(
    ("raw", "mode"), [("AES256", "AES256"), ("aes256", "AES256"), ("aws:kms", "aws:kms")]
)
def test_server_side_encryption_modes(tmp_path: Path, raw: str, mode: str) -> None:
    assert settings(tmp_path, INFERQ_S3_SSE=raw, **S3).s3_sse == mode


def test_a_kms_key_goes_with_aws_kms(tmp_path: Path) -> None:
    s = settings(tmp_path, INFERQ_S3_SSE="aws:kms", INFERQ_S3_SSE_KMS_KEY_ID="alias/inferq", **S3)
    assert (s.s3_sse, s.s3_sse_kms_key_id) == ("aws:kms", "alias/inferq")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"INFERQ_S3_SSE": "DES", **S3}, "INFERQ_S3_SSE must be one of AES256, aws:kms"),
        ({"INFERQ_S3_SSE": "AES256"}, "applies to s3:// storage"),
        ({"INFERQ_S3_SSE": "AES256", "INFERQ_S3_SSE_KMS_KEY_ID": "k", **S3}, "needs INFERQ_S3_SSE=aws:kms"),
        ({"INFERQ_S3_SSE_KMS_KEY_ID": "k", **S3}, "needs INFERQ_S3_SSE=aws:kms"),
    ],
)
def test_encryption_settings_that_cannot_work_are_refused(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    # a request for encryption that would silently not happen stops the service instead
    with pytest.raises(SettingsError, match=says):
        settings(tmp_path, **env)


def test_delete_after_counts_days_from_creation_and_zero_keeps(tmp_path: Path) -> None:
    s = settings(tmp_path, INFERQ_RETENTION_DAYS="10")
    made = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert delete_after(made, None, s) == made + timedelta(days=10)  # the server's default
    assert delete_after(made, 2, s) == made + timedelta(days=2)  # the request's own
    assert delete_after(made, 0, s) is None  # kept until deleted
    assert delete_after(made, None, s.with_overrides(retention_days=0)) is None
