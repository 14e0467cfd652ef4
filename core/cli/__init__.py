"""The ``ftp`` command line: the root group and its commands (``main``), one module per group of commands
(``data``: data check/report/advise; ``model``: plan, export). ``ftp.cli:main`` is the console script."""

from ftp.cli.main import cli, main

__all__ = ["cli", "main"]
