"""Client commands for training: `inferq train`, `inferq evaluate`, `inferq models list|show|delete`.

Over HTTP like the other client commands (`inferq.cli.client_commands`); `inferq models import` (server side)
lives in the same `models` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from inferq.cli.client_commands import (
    client_options,
    dumps,
    exit_status,
    follow,
    make_client,
    parse_pairs,
    reports_errors,
)
from inferq.progress import summarize

TASKS = click.Choice(["text-classification", "image-classification"])


def _upload_and_follow_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True)(func)
    func = click.option("--wait", "wait_", is_flag=True, help="Wait for the job and show its progress.")(func)
    return func


def register_training_commands(group: click.Group, models: click.Group) -> None:
    @group.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--task", required=True, type=TASKS)
    @click.option("--name", "model_name", required=True, help="Name of the model to create (name:N).")
    @click.option(
        "--base",
        help="Base model (minilm-l6, name:version, cnn-small, cnn-base) or 'scratch'; default: the task's.",
    )
    @click.option("--validation", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--hp", "hps", multiple=True, metavar="KEY=VALUE", help="A hyperparameter (repeatable).")
    @_upload_and_follow_options
    @client_options
    @reports_errors
    def train(
        file: Path,
        task: str,
        model_name: str,
        base: str | None,
        validation: Path | None,
        hps: tuple[str, ...],
        wait_: bool,
        poll: float,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Upload FILE ({text|image, label} records) and train a classifier; print the job id."""
        with make_client(url, api_key, http_timeout) as client:
            training = client.upload(file, purpose="training")
            validation_id = client.upload(validation, purpose="training").id if validation else None
            base_model: str | object | None = ...
            if base is not None:
                base_model = None if base == "scratch" else base
            job = client.train(
                task=task,
                training_file=training.id,
                model_name=model_name,
                base_model=base_model,
                validation_file=validation_id,
                hyperparameters=parse_pairs(hps, "--hp") or None,
            )
            click.echo(job.id)
            if not wait_:
                return
            final, elapsed = follow(client, job.id, poll=poll, timeout=None, quiet=False)
        click.echo(summarize(final, elapsed), err=True)
        raise click.exceptions.Exit(exit_status(final))

    @group.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--task", required=True, type=TASKS)
    @click.option("--model", required=True, help="name or name:version")
    @_upload_and_follow_options
    @client_options
    @reports_errors
    def evaluate(
        file: Path,
        task: str,
        model: str,
        wait_: bool,
        poll: float,
        url: str,
        api_key: str | None,
        http_timeout: float,
    ) -> None:
        """Upload a labelled FILE and measure MODEL on it; print the job id (metrics with --wait)."""
        with make_client(url, api_key, http_timeout) as client:
            uploaded = client.upload(file, purpose="input")
            job = client.evaluate(task=task, model=model, input_file=uploaded.id)
            click.echo(job.id)
            if not wait_:
                return
            final, elapsed = follow(client, job.id, poll=poll, timeout=None, quiet=False)
        click.echo(summarize(final, elapsed), err=True)
        if final.metrics:
            click.echo(dumps(final.metrics))
        raise click.exceptions.Exit(exit_status(final))

    @models.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @client_options
    @reports_errors
    def models_list(as_json: bool, url: str, api_key: str | None, http_timeout: float) -> None:
        """The built-in models and yours, with their latest version."""
        with make_client(url, api_key, http_timeout) as client:
            data = client.models()
        if as_json:
            click.echo(dumps(data))
            return
        for m in data:
            latest = m.get("latest_version")
            versions = [v for v in m.get("versions", []) if v.get("version") == latest]
            acc = (versions[0].get("metrics") or {}).get("accuracy") if versions else None
            extra = f" accuracy {acc:.3f}" if isinstance(acc, (int, float)) else ""
            kind = "built-in" if m.get("builtin") else f"{len(m.get('versions', []))} version(s)"
            click.echo(f"{m['name']}:{latest} {m.get('task')} {kind}{extra}")

    @models.command("show")
    @click.argument("ref", metavar="NAME[:VERSION]")
    @client_options
    @reports_errors
    def models_show(ref: str, url: str, api_key: str | None, http_timeout: float) -> None:
        """A model with its versions (task, labels, metrics, base model, the job that made it)."""
        with make_client(url, api_key, http_timeout) as client:
            click.echo(dumps(client.model(ref)))

    @models.command("delete")
    @click.argument("ref", metavar="NAME:VERSION")
    @client_options
    @reports_errors
    def models_delete(ref: str, url: str, api_key: str | None, http_timeout: float) -> None:
        """Delete one version (refused while a live job uses it)."""
        with make_client(url, api_key, http_timeout) as client:
            client.delete_model(ref)
        click.echo(f"deleted {ref}")
