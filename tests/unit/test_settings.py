"""`shared.settings`: one frozen object read from an environment mapping, refusing unsafe combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferq.shared.settings import (
    GIB,
    Settings,
    SettingsError,
    get_settings,
    normalize_database_url,
    reset_settings_cache,
)


def test_an_empty_environment_is_the_embedded_mode_in_the_data_dir(tmp_path: Path) -> None:
    # when settings are read with only a data dir
    s = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path)})

    # then everything lives in that folder: SQLite, file storage, the filesystem broker
    assert s.data_dir == tmp_path.resolve()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'inferq.db'}"
    assert s.storage_url == f"file://{tmp_path.resolve() / 'storage'}"
    assert s.broker_url == "filesystem://"
    assert (s.is_sqlite, s.is_embedded_broker) == (True, True)
    assert s.broker_dir == tmp_path.resolve() / "broker"
    assert s.model_cache_dir == tmp_path.resolve() / "models"
    assert (s.max_upload_bytes, s.default_completion_window_seconds) == (2 * GIB, 86400)


def test_a_mapping_is_read_instead_of_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a process environment that says otherwise
    monkeypatch.setenv("INFERQ_BATCH_TOKENS", "999")

    # when settings are read from a mapping
    s = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path)})

    # then only the mapping counts
    assert s.batch_tokens == 0  # 0: the worker picks by device (worker.inference.batching_for)


def test_servers_and_limits_come_from_their_variables(tmp_path: Path) -> None:
    # when every server and a few limits are given
    s = Settings.from_env(
        {
            "INFERQ_DATA_DIR": str(tmp_path),
            "INFERQ_DATABASE_URL": "postgres://u:p@db:5432/inferq",
            "INFERQ_BROKER_URL": "redis://redis:6379/1",
            "INFERQ_STORAGE_URL": "s3://bucket/prefix",
            "INFERQ_S3_ENDPOINT_URL": "http://minio:9000",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "INFERQ_MAX_UPLOAD_BYTES": "1024",
            "INFERQ_PART_RECORDS": "50",
            "INFERQ_LOG_JSON": "yes",
        }
    )

    # then they are used, the Postgres URL with the psycopg 3 driver
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/inferq"
    assert (s.broker_url, s.storage_url, s.s3_endpoint_url) == (
        "redis://redis:6379/1",
        "s3://bucket/prefix",
        "http://minio:9000",
    )
    assert s.s3_region == "eu-west-1"
    assert (s.max_upload_bytes, s.part_records, s.log_json) == (1024, 50, True)
    assert (s.is_sqlite, s.is_embedded_broker) == (False, False)


def test_the_inferq_region_wins_over_the_aws_one(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"INFERQ_DATA_DIR": str(tmp_path), "INFERQ_S3_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}
    )
    assert s.s3_region == "us-west-2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://h/db", "postgresql+psycopg://h/db"),
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_are_normalized_to_psycopg3(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("INFERQ_MAX_UPLOAD_BYTES", "lots", "must be an integer"),
        ("INFERQ_MAX_UPLOAD_BYTES", "0", "must be >= 1"),
        ("INFERQ_BATCH_TOKENS", "10", "must be >= 64"),
        ("INFERQ_LEASE_SECONDS", "1", "must be >= 5"),
    ],
)
def test_bad_numbers_are_refused_naming_the_variable(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    # when a number is malformed or below its minimum
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), name: value})

    # then the error names the variable and the rule
    assert name in str(e.value)
    assert says in str(e.value)


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    s = Settings.from_env(
        {"INFERQ_DATA_DIR": str(tmp_path), "INFERQ_PART_RECORDS": "", "INFERQ_BROKER_URL": ""}
    )
    assert (s.part_records, s.broker_url) == (2000, "filesystem://")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"INFERQ_HEARTBEAT_SECONDS": "10", "INFERQ_LEASE_SECONDS": "20"}, "less than half"),
        (
            {"INFERQ_TASK_TIME_LIMIT": "3600", "INFERQ_VISIBILITY_TIMEOUT": "3600"},
            "below INFERQ_VISIBILITY_TIMEOUT",
        ),
    ],
)
def test_combinations_that_would_lose_or_double_work_are_refused(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), **env})


def test_overrides_make_a_new_object_and_leave_the_original(tmp_path: Path) -> None:
    # given settings
    s = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path)})

    # when one value is overridden
    t = s.with_overrides(max_upload_bytes=10)

    # then only the copy changed, and settings stay frozen and hashable
    assert (s.max_upload_bytes, t.max_upload_bytes) == (2 * GIB, 10)
    assert hash(s) != hash(t)
    with pytest.raises(AttributeError):
        s.part_records = 1  # type: ignore[misc]


def test_get_settings_is_read_once_until_the_cache_is_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an environment read through get_settings
    monkeypatch.setenv("INFERQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INFERQ_PART_RECORDS", "11")
    reset_settings_cache()
    try:
        first = get_settings()

        # when the environment changes
        monkeypatch.setenv("INFERQ_PART_RECORDS", "22")

        # then the cached settings stay until the cache is reset
        assert get_settings() is first
        assert first.part_records == 11
        reset_settings_cache()
        assert get_settings().part_records == 22
    finally:
        reset_settings_cache()


def test_per_tenant_limits_have_generous_defaults_and_zero_turns_them_off(tmp_path: Path) -> None:
    # given no limit variables, then both set, then both 0
    default = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path)})
    given = Settings.from_env(
        {
            "INFERQ_DATA_DIR": str(tmp_path),
            "INFERQ_RATE_LIMIT_PER_MINUTE": "120",
            "INFERQ_MAX_LIVE_JOBS_PER_TENANT": "7",
        }
    )
    off = Settings.from_env(
        {
            "INFERQ_DATA_DIR": str(tmp_path),
            "INFERQ_RATE_LIMIT_PER_MINUTE": "0",
            "INFERQ_MAX_LIVE_JOBS_PER_TENANT": "0",
        }
    )

    # then the defaults are 6000 requests a minute and 100 live jobs, and the values are read as given
    assert (default.rate_limit_per_minute, default.max_live_jobs_per_tenant) == (6000, 100)
    assert (given.rate_limit_per_minute, given.max_live_jobs_per_tenant) == (120, 7)
    assert (off.rate_limit_per_minute, off.max_live_jobs_per_tenant) == (0, 0)
    with pytest.raises(SettingsError, match="INFERQ_RATE_LIMIT_PER_MINUTE"):
        Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), "INFERQ_RATE_LIMIT_PER_MINUTE": "-1"})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 30),
        ({"INFERQ_RECONCILE_INTERVAL_SECONDS": "7"}, 7),
        ({"INFERQ_RECONCILE_INTERVAL": "9"}, 9),  # the older name is still read
        ({"INFERQ_RECONCILE_INTERVAL_SECONDS": "7", "INFERQ_RECONCILE_INTERVAL": "9"}, 7),
    ],
)
def test_the_reconcile_interval_comes_from_its_variable_or_the_older_name(
    env: dict[str, str], expected: int, tmp_path: Path
) -> None:
    # when the settings are read
    settings = Settings.from_env({"INFERQ_DATA_DIR": str(tmp_path), **env})

    # then the new name wins over the older one
    assert settings.reconcile_interval_seconds == expected
