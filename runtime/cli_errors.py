"""What every `parley` subcommand shares with the command line around it: the exit codes and the
exception a subcommand raises for a failure the user can act on.

Its own module so that the subcommands (cli_service, cli_client, export.cli, ...) and the `parley`
entry point (cli) both import it, and neither imports the other's module for it.
"""
from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CommandFailed(Exception):
    """A subcommand failed for a reason the user can act on; the message says which."""
