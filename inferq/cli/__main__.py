"""`python -m inferq.cli`: the `inferq` command."""

from inferq.cli import main

main()
