"""The ``runbook`` command: a thin dispatcher over one module per subcommand."""

from runbook_lib.cli.main import main

__all__ = ["main"]
