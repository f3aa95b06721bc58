"""Throughput and ETA from part rows: records spread over the time each part ran, counted in the window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from inferq.shared.models import Job
from inferq.shared.throughput import PartSample, measure, overall_throughput

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_finished_and_running_parts_give_the_rate_over_the_last_minute() -> None:
    # Given a part that ran entirely inside the window (1,000 records, 20,000 tokens, 25,000 slots),
    # a part that ran half inside it, and a running part that has reported 300 records so far
    samples = [
        PartSample(ago(50), ago(30), 1000, 20_000, 25_000, "w1"),
        PartSample(ago(90), ago(30), 1200, 24_000, 30_000, "w2"),
        PartSample(ago(30), None, 300, None, None, "w1"),
    ]

    # When the rates are measured for a job with 10,000 records left
    rates = measure(samples, job_started_at=ago(600), remaining=10_000, now=NOW)

    # Then the window counts 1,000 + 1,200 * 30/60 + 300 = 1,900 records in 60 s
    assert rates["window_seconds"] == 60.0
    assert rates["records_per_second"] == round(1900 / 60, 2)
    # tokens per record of the finished parts (20 per record) times the record rate
    assert rates["tokens_per_second"] == round(1900 / 60 * 20, 1)
    assert rates["eta_seconds"] == round(10_000 / (1900 / 60), 1)
    assert rates["padding_ratio"] == round((55_000 - 44_000) / 55_000, 4)
    assert rates["running_workers"] == ["w1"]


def test_a_job_younger_than_the_window_is_measured_over_its_age() -> None:
    # Given a job that started 10 s ago and a running part with 50 records done
    samples = [PartSample(ago(10), None, 50, None, None, "w1")]

    # When measured
    rates = measure(samples, job_started_at=ago(10), remaining=950, now=NOW)

    # Then the rate is over 10 s, tokens are unknown until a part finishes, and the ETA follows
    assert rates["window_seconds"] == 10.0
    assert rates["records_per_second"] == 5.0
    assert rates["tokens_per_second"] is None
    assert rates["eta_seconds"] == 190.0


def test_no_progress_means_no_eta() -> None:
    # Given a job whose parts have not started
    # When measured
    rates = measure([], job_started_at=ago(5), remaining=100, now=NOW)

    # Then the rate is zero and the ETA unknown rather than infinite
    assert rates["records_per_second"] == 0.0
    assert rates["eta_seconds"] is None


def test_a_finished_job_reports_its_average_over_the_whole_run() -> None:
    # Given a job that did 2,000 records (10 failed) and 40,000 tokens in 20 s
    job = Job(
        type="predict",
        started_at=ago(20),
        finished_at=NOW,
        completed=1990,
        failed=10,
        metrics={"tokens": 40_000, "padding_ratio": 0.12},
    )

    # When its overall throughput is read
    rates = overall_throughput(job)

    # Then it is the average
    assert rates is not None
    assert rates["records_per_second"] == 100.0
    assert rates["tokens_per_second"] == 2000.0
    assert rates["padding_ratio"] == 0.12
    assert rates["eta_seconds"] == 0.0
