"""``ftp_commands``: plugins add CLI commands; help lists them, a broken one is a one-line error naming the
plugin, and the built-in commands neither wait for nor break on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import invoke

from ftp import hookimpl


class Greeter:
    @hookimpl
    def ftp_commands(self, cli: click.Group) -> None:
        @cli.command()
        @click.argument("name")
        def greet(name: str) -> None:
            """Greet someone (a plugin's command)."""
            click.echo(f"hello {name}")


def test_an_inline_plugin_adds_a_command(pm: Any) -> None:
    pm.register(Greeter(), name="greeter")
    assert invoke("greet", "ann").output == "hello ann\n"
    assert "Greet someone (a plugin's command)." in invoke("--help").output


def test_a_command_of_an_unregistered_plugin_is_gone(pm: Any) -> None:
    """The root group is one object for the process; a new plugin manager (a test's) drops the old commands."""
    from ftp.plugin_manager import reset_plugin_manager

    pm.register(Greeter(), name="greeter")
    assert invoke("greet", "ann").exit_code == 0
    reset_plugin_manager()
    result = invoke("greet", "ann")
    assert result.exit_code == 2 and "No such command 'greet'" in result.output


def test_a_plugin_may_not_replace_a_builtin_command(pm: Any) -> None:
    class Hijack:
        @hookimpl
        def ftp_commands(self, cli: click.Group) -> None:
            @cli.command("run")
            def run() -> None:
                """Not ftp's run."""

    pm.register(Hijack(), name="hijack")
    result = invoke("--help")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: plugin 'hijack': ftp_commands replaces the command 'run', which ftp "
                                     "or another plugin already has; give it another name")
    from ftp.cli import cli

    assert cli.commands["run"].help and cli.commands["run"].help.startswith("Run a pipeline")  # still ftp's


def test_builtin_plugins_add_no_commands() -> None:
    """Why ``ftp --help`` may skip building the plugin manager when no third-party plugin is installed."""
    from ftp.plugin_manager import BUILTIN_PLUGINS, get_plugin_manager

    implementers = [i.plugin_name for i in get_plugin_manager().hook.ftp_commands.get_hookimpls()]
    assert not set(implementers) & set(BUILTIN_PLUGINS)


def install(tmp_path: Path, body: str) -> dict[str, str]:
    """A one-module package ``cmdplug`` with an ``ftp`` entry point; the environment that finds it."""
    (tmp_path / "cmdplug.py").write_text(body, encoding="utf-8")
    info = tmp_path / "cmdplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cmdplug\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ftp]\ncmdplug = cmdplug\n", encoding="utf-8")
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FTP_")}, "PYTHONPATH": str(tmp_path)}


BROKEN = ("from ftp import hookimpl\n@hookimpl\ndef ftp_commands(cli):\n"
          "    raise RuntimeError('cannot find the config file\\nsecond line')\n")


def test_a_broken_command_registration_is_one_line(tmp_path: Path) -> None:
    env = install(tmp_path, BROKEN)
    proc = subprocess.run([sys.executable, "-m", "ftp", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: plugin 'cmdplug': ftp_commands failed: RuntimeError: cannot find "
                                        "the config file; run with --debug for the traceback"]
    debug = subprocess.run([sys.executable, "-m", "ftp", "--debug", "--help"], capture_output=True, text=True, env=env)
    assert "Traceback" in debug.stderr and "cmdplug.py" in debug.stderr


@pytest.mark.parametrize("command", [["plugins"], ["runs", "list"], ["run", "--help"]])
def test_builtin_commands_do_not_load_plugin_commands(tmp_path: Path, command: list[str]) -> None:
    """A plugin's broken command breaks only help and its own command, never ftp's."""
    proc = subprocess.run([sys.executable, "-m", "ftp", *command], capture_output=True, text=True,
                          env=install(tmp_path, BROKEN), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_an_installed_plugins_command_runs(tmp_path: Path) -> None:
    body = ("import click\nfrom ftp import hookimpl\n@hookimpl\ndef ftp_commands(cli):\n"
            "    @cli.command()\n    def hello():\n        '''Say hello.'''\n        click.echo('hello')\n")
    env = install(tmp_path, body)
    proc = subprocess.run([sys.executable, "-m", "ftp", "hello"], capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    hidden = subprocess.run([sys.executable, "-m", "ftp", "hello"], capture_output=True, text=True,
                            env={**env, "FTP_DISABLE_PLUGINS": "cmdplug"})
    assert hidden.returncode == 2 and "No such command 'hello'" in hidden.stderr
