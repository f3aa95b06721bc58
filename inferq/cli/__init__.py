"""`inferq`: run the service (up, serve, worker, db, keys, models) and use it (submit, wait, download)."""

from __future__ import annotations

import click

from inferq.cli.client_commands import register_client_commands
from inferq.cli.server_commands import models_group, register_server_commands
from inferq.cli.training_commands import register_training_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inferq")
def main() -> None:
    """inferq: bulk machine-learning jobs on your own hardware."""


register_server_commands(main)
register_client_commands(main)
register_training_commands(main, models_group)

if __name__ == "__main__":  # pragma: no cover
    main()
