"""Client commands of the CLI: submit, status (of a job or the deployment), wait, download, cancel,
retry, jobs, events.

Each talks to a running server through `inferq.client.Client`. The server and the key come from
`--url` / `--api-key` or the INFERQ_URL / INFERQ_API_KEY environment variables, read when the
command runs. Errors print `error: <code>: <message>` on stderr and exit 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import orjson

from inferq.cli.status import deployment_lines
from inferq.client import Client, ClientError, Job
from inferq.progress import ProgressBar, short_status, summarize

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


def fail(code: str, message: str) -> NoReturn:
    """Print an error the CLI's way and stop with exit status 1."""
    click.echo(f"error: {code}: {message}", err=True)
    raise click.exceptions.Exit(EXIT_FAILED)


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn client errors into `error: <code>: <message>` and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as e:
            click.echo(f"error: {e.code}: {e.message}", err=True)
            raise click.exceptions.Exit(EXIT_FAILED) from e

    return wrapper


def client_options(func: Callable[P, R]) -> Callable[P, R]:
    """`--url`, `--api-key` and `--http-timeout`, shared by every client command."""
    func = click.option(
        "--http-timeout",
        type=click.FloatRange(min=0.1),
        default=60.0,
        show_default=True,
        help="Seconds to wait for each HTTP answer.",
    )(func)
    func = click.option(
        "--api-key",
        envvar="INFERQ_API_KEY",
        show_envvar=True,
        help="API key of the tenant (`inferq keys create`).",
    )(func)
    func = click.option(
        "--url",
        envvar="INFERQ_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="Base URL of the inferq server.",
    )(func)
    return func


def make_client(url: str, api_key: str | None, http_timeout: float) -> Client:
    if not api_key:
        fail("missing_api_key", "no API key: pass --api-key or set INFERQ_API_KEY")
    return Client(url, api_key, timeout=http_timeout)


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """`key=value` options into a dict; values that read as JSON (`128`, `false`) keep that type."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        try:
            out[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[key] = raw
    return out


def dumps(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def follow(
    client: Client, job_id: str, *, poll: float, timeout: float | None, quiet: bool
) -> tuple[Job, float]:
    """Wait for the job, drawing its progress on stderr; return it and the seconds waited."""
    bar = ProgressBar(sys.stderr)
    try:
        job = client.wait(job_id, poll=poll, timeout=timeout, on_progress=None if quiet else bar.update)
    except KeyboardInterrupt as e:
        bar.finish()
        click.echo(f"interrupted: {job_id} goes on running on the server", err=True)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from e
    finally:
        bar.finish()
    return job, bar.elapsed


def exit_status(job: Job) -> int:
    """0 when the job succeeded; 1 when it ended failed, cancelled or expired."""
    return 0 if job.succeeded else EXIT_FAILED


def register_client_commands(group: click.Group) -> None:
    @group.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--task", required=True, help="embedding, text-classification or image-classification.")
    @click.option("--model", required=True, help="Model name or name:version, e.g. minilm-l6.")
    @click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A job param (repeatable).")
    @click.option("--priority", type=click.IntRange(0, 9), help="0 (default) to 9 (first).")
    @click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Metadata kept with the job.")
    @click.option("--idempotency-key", help="Submitting again with the same key returns the same job.")
    @click.option("--wait", "wait_", is_flag=True, help="Wait for the job and show its progress.")
    @click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
    @client_options
    @reports_errors
    def submit(
        file: Path,
        task: str,
        model: str,
        params: tuple[str, ...],
        priority: int | None,
        metadata: tuple[str, ...],
        idempotency_key: str | None,
        wait_: bool,
        poll: float,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Upload FILE and submit a prediction job over it; print the job id."""
        job_params = parse_pairs(params, "--param")
        job_metadata = parse_pairs(metadata, "--metadata")
        with make_client(url, api_key, http_timeout) as client:
            job = client.submit_file(
                file,
                task=task,
                model=model,
                params=job_params or None,
                priority=priority,
                metadata=job_metadata or None,
                idempotency_key=idempotency_key,
            )
            click.echo(job.id)
            if not wait_:
                return
            final, elapsed = follow(client, job.id, poll=poll, timeout=None, quiet=False)
        click.echo(summarize(final, elapsed), err=True)
        raise click.exceptions.Exit(exit_status(final))

    @group.command()
    @click.argument("job_id", metavar="[JOB]", required=False)
    @click.option("--short", is_flag=True, help="One line instead of the job's JSON.")
    @client_options
    @reports_errors
    def status(job_id: str | None, short: bool, url: str, api_key: str | None, http_timeout: float) -> None:
        """Show a job; without JOB, the deployment: its database, broker and storage, and when a worker
        last ran the reconciler (exit status 1 with a warning when none has for several intervals)."""
        if job_id is None:
            with Client(url, api_key or "", timeout=http_timeout) as anonymous:  # /readyz needs no key
                lines, warnings = deployment_lines(anonymous.ready())
            click.echo("\n".join(lines))
            if warnings:
                raise click.exceptions.Exit(EXIT_FAILED)
            return
        with make_client(url, api_key, http_timeout) as client:
            job = client.get(job_id)
        click.echo(short_status(job) if short else dumps(job.to_dict()))

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
    @click.option("--timeout", type=click.FloatRange(min=0), help="Give up (exit 1) after this many seconds.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the final summary.")
    @client_options
    @reports_errors
    def wait(
        job_id: str,
        poll: float,
        timeout: float | None,
        quiet: bool,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Wait for a job to end, showing its progress on stderr.

        Exits 0 when it succeeded, 1 when it failed, was cancelled or expired.
        """
        with make_client(url, api_key, http_timeout) as client:
            final, elapsed = follow(client, job_id, poll=poll, timeout=timeout, quiet=quiet)
        click.echo(summarize(final, elapsed))
        raise click.exceptions.Exit(exit_status(final))

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @click.option(
        "--output",
        "-o",
        required=True,
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        help="Where to write the results (`-` for stdout).",
    )
    @click.option(
        "--errors-to",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also write the error file (one line per bad record) here.",
    )
    @click.option(
        "--follow",
        is_flag=True,
        help="Write lines as the job's parts finish (in input order) until the job is over.",
    )
    @click.option(
        "--merged",
        is_flag=True,
        help="The results with the lines of the job's retries (`inferq retry`) in place, in input order.",
    )
    @click.option(
        "--poll",
        type=click.FloatRange(min=0.1),
        default=2.0,
        show_default=True,
        help="With --follow: seconds between checks for newly finished parts.",
    )
    @client_options
    @reports_errors
    def download(
        job_id: str,
        output: Path,
        errors_to: Path | None,
        follow: bool,
        merged: bool,
        poll: float,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Download a job's results (and its per-record errors)."""
        if follow and merged:
            fail("invalid_value", "--merged reads ended jobs; it cannot be used with --follow")
        with make_client(url, api_key, http_timeout) as client:
            if follow:
                written_lines = _follow_to(client, job_id, output, poll)
                click.echo(f"results: {output} ({written_lines:,} lines)", err=True)
            elif str(output) == "-":
                out = sys.stdout.buffer
                for record in client.iter_results(job_id, merged=merged):
                    out.write(orjson.dumps(record) + b"\n")
                out.flush()
            else:
                written = client.download(job_id, output, merged=merged)
                click.echo(f"results: {written} ({written.stat().st_size:,} bytes)", err=True)
            if errors_to is not None:
                written = client.download(job_id, errors_to, errors=True)
                click.echo(f"errors: {written} ({written.stat().st_size:,} bytes)", err=True)

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @client_options
    @reports_errors
    def cancel(job_id: str, url: str, api_key: str | None, http_timeout: float) -> None:
        """Cancel a job; finished records stay downloadable."""
        with make_client(url, api_key, http_timeout) as client:
            job = client.cancel(job_id)
        click.echo(short_status(job))

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @client_options
    @reports_errors
    def delete(job_id: str, url: str, api_key: str | None, http_timeout: float) -> None:
        """Delete an ended job and everything it stored (results, parts, manifest) now."""
        with make_client(url, api_key, http_timeout) as client:
            client.delete_job(job_id)
        click.echo(f"{job_id} deleted")

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @click.option(
        "--only",
        type=click.Choice(["errored", "expired", "cancelled"]),
        default="errored",
        show_default=True,
        help="Which records: those in the error file, or those an expired or cancelled job never ran.",
    )
    @click.option("--idempotency-key", help="Retrying again with the same key returns the same job.")
    @click.option("--wait", "wait_", is_flag=True, help="Wait for the retry and show its progress.")
    @click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
    @client_options
    @reports_errors
    def retry(
        job_id: str,
        only: str,
        idempotency_key: str | None,
        wait_: bool,
        poll: float,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Run a job's errored (or expired / cancelled) records again as a new job, with the same ids.

        Prints the new job's id; `inferq download JOB --merged` then gives the whole output in order.
        """
        with make_client(url, api_key, http_timeout) as client:
            job = client.retry(job_id, only, idempotency_key=idempotency_key)
            click.echo(job.id)
            if not wait_:
                return
            final, elapsed = follow(client, job.id, poll=poll, timeout=None, quiet=False)
        click.echo(summarize(final, elapsed), err=True)
        raise click.exceptions.Exit(exit_status(final))

    @group.command()
    @click.option("--status", "status_", help="Only jobs in this state.")
    @click.option("--type", "type_", type=click.Choice(["predict", "train", "evaluate"]))
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
    @click.option("--cursor", help="The next_cursor of a previous page.")
    @click.option("--json", "as_json", is_flag=True, help="The page as JSON.")
    @client_options
    @reports_errors
    def jobs(
        status_: str | None,
        type_: str | None,
        limit: int,
        cursor: str | None,
        as_json: bool,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """List jobs, newest first."""
        with make_client(url, api_key, http_timeout) as client:
            page = client.list_jobs(status=status_, type=type_, limit=limit, cursor=cursor)
        if as_json:
            click.echo(
                dumps(
                    {
                        "data": [job.to_dict() for job in page.data],
                        "has_more": page.has_more,
                        "next_cursor": page.next_cursor,
                    }
                )
            )
            return
        for job in page.data:
            click.echo(f"{short_status(job)} {job.created_at or ''}".rstrip())
        if page.has_more and page.next_cursor:
            click.echo(f"more: --cursor {page.next_cursor}", err=True)

    @group.command()
    @click.argument("job_id", metavar="JOB")
    @client_options
    @reports_errors
    def events(job_id: str, url: str, api_key: str | None, http_timeout: float) -> None:
        """Print a job's event log, one JSON object per line, oldest first."""
        with make_client(url, api_key, http_timeout) as client:
            log = client.events(job_id)
        for event in log:
            click.echo(orjson.dumps(event).decode())


def _follow_to(client: Client, job_id: str, output: Path, poll: float) -> int:
    """Stream the job's finished lines to `output` (`-`: stdout) as they come; the line count."""
    count = 0
    to_stdout = str(output) == "-"
    out = sys.stdout.buffer if to_stdout else output.open("wb")
    try:
        for record in client.follow_results(job_id, poll=poll):
            out.write(orjson.dumps(record) + b"\n")
            out.flush()
            count += 1
    finally:
        if not to_stdout:
            out.close()
    return count
