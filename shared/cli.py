"""`inferq`: run the service (up, serve, worker, db, keys, models) and use it (submit, wait, download)."""

from __future__ import annotations

import click

from shared.cli_client import register_client_commands
from shared.cli_server import models_group, register_server_commands
from shared.cli_training import register_training_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inferq")
def main() -> None:
    """inferq: bulk machine-learning jobs on your own hardware."""


register_server_commands(main)
register_client_commands(main)
register_training_commands(main, models_group)

if __name__ == "__main__":  # pragma: no cover
    main()
