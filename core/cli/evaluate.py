"""``ftp eval``: evaluate any model on any test file (being written)."""

from __future__ import annotations

import click


@click.command("eval")
def eval_command() -> None:
    """Evaluate a registered version, a run's model or a model folder on a test file."""
