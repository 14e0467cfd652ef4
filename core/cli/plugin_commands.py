"""Commands from plugins (the ``ftp_commands`` hook), added to the root group the first time it needs them.

``ftp --help`` lists them and ``ftp NAME`` finds them, but the built-in commands never wait for them, so a
plugin's broken command cannot break ``ftp run``. When no third-party plugin is installed (or the
switches let none in), help does not build the plugin manager at all: built-in plugins add no commands
(ftp's own live in ``ftp.cli``), and building it would import pydantic and every built-in, which would
cost ``ftp --help`` its instant start.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

from ftp.errors import FtpError


class PluginCommandsGroup(click.Group):
    """A group whose plugin commands are looked up lazily, once per plugin manager (once per process)."""

    _builtin: frozenset[str] | None = None
    _commands_of: Any = None  # the plugin manager whose commands are in ``self.commands``

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:  # help is printed while arguments are parsed, before ``invoke`` could catch the error
            self.add_plugin_commands()
        except FtpError as exc:
            self.fail(ctx, exc)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.builtin_names():
            self.add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def builtin_names(self) -> frozenset[str]:
        """The commands the group had before any plugin added one (the first look-up comes after import)."""
        if self._builtin is None:
            self._builtin = frozenset(self.commands)
        return self._builtin

    def add_plugin_commands(self) -> None:
        from ftp import plugin_manager

        builtin = self.builtin_names()
        pm = plugin_manager.cached_plugin_manager()
        if pm is None and plugin_manager.selected_entry_points():
            pm = plugin_manager.get_plugin_manager()
        if self._commands_of is pm:
            return
        for name in set(self.commands) - builtin:  # another manager's (tests build one per test)
            del self.commands[name]
        self._commands_of = pm
        if pm is not None:
            from ftp.hooks import Hooks

            Hooks(pm).commands(self)

    def fail(self, ctx: click.Context, exc: FtpError) -> NoReturn:
        """Report an expected error; the root group (``ftp.cli.main.FtpGroup``) prints it as one line."""
        raise exc
