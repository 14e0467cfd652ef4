"""``ftp review export`` / ``ftp review import``: blind side-by-side review by people (being written)."""

from __future__ import annotations

import click


@click.group()
def review() -> None:
    """Blind side-by-side review of a run's answers by people: export a sheet, import the choices."""
