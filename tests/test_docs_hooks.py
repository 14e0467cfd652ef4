"""Every hook is documented (datasette's pattern): adding a hookspec without a ``## ftp_<name>`` section
in docs/plugin-hooks.md fails here, and so does a section for a hook that does not exist, or one whose
signature line differs from the hookspec's (names, order and types of the arguments, and the return type).
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pluggy
import pytest

from ftp import hookspecs
from ftp.plugin_manager import check

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-hooks.md"


def specs() -> set[str]:
    """Hook names declared in ftp.hookspecs (what the plugin manager registers as specs)."""
    return {name for name in dir(hookspecs) if name.startswith("ftp_") and callable(getattr(hookspecs, name))}


def text() -> str:
    return DOC.read_text(encoding="utf-8")


def headings() -> list[str]:
    return re.findall(r"^## (ftp_\w*)\s*$", text(), flags=re.MULTILINE)


def section(name: str) -> str:
    return text().split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]


def test_every_hook_has_a_section() -> None:
    missing = specs() - set(headings())
    assert not missing, f"document these hooks in {DOC.name}: {sorted(missing)}"


def test_every_section_is_a_real_hook() -> None:
    unknown = set(headings()) - specs()
    assert not unknown, f"{DOC.name} has sections for hooks that do not exist: {sorted(unknown)}"
    assert len(headings()) == len(set(headings())), "a hook is documented twice"


def test_the_headings_are_exact_hook_names() -> None:
    """A heading like ``## ftp_evaluate (evaluators)`` would escape the checks above."""
    titles = re.findall(r"^## (.*)$", text(), flags=re.MULTILINE)
    assert not [t for t in titles if t.startswith("ftp_") and t not in specs()]


@pytest.mark.parametrize("name", sorted(specs()))
def test_each_section_says_how_the_hook_is_called(name: str) -> None:
    pm = pluggy.PluginManager("ftp")
    pm.add_hookspecs(hookspecs)
    firstresult = bool(getattr(pm.hook, name).spec.opts.get("firstresult"))
    body = section(name)
    assert ("**firstresult.**" if firstresult else "**Collect-all.**") in body
    assert f"`{name}(" in body  # the signature


def declared_signature(name: str) -> str:
    """The hookspec's signature as the doc writes it; the annotations are strings (``from __future__``)."""
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", sorted(specs()))
def test_each_section_shows_the_hooks_exact_signature(name: str) -> None:
    """The doc's convention: a section opens with ``**kind.** `signature` `` exactly as core/hookspecs.py has it."""
    first = section(name).strip().splitlines()[0]
    shown = re.fullmatch(r"\*\*(?:Collect-all|firstresult)\.\*\* `([^`]*)`", first)
    assert shown, f"{DOC.name} ## {name}: the first line must be **Collect-all.** or **firstresult.** and the " \
                  f"signature in backticks, got {first!r}"
    assert shown.group(1) == declared_signature(name), \
        f"{DOC.name} ## {name} documents `{shown.group(1)}`; core/hookspecs.py declares `{declared_signature(name)}`"


@pytest.mark.parametrize("name", sorted(specs()))
def test_each_example_registers_cleanly(name: str) -> None:
    """The section's example is real code: it runs, and pluggy accepts it as an implementation."""
    blocks = re.findall(r"```python\n(.*?)```", section(name), flags=re.DOTALL)
    assert blocks, f"{name}: no example"
    module = types.ModuleType(f"example_{name}")
    exec(compile(blocks[-1], f"{DOC.name}#{name}", "exec"), module.__dict__)  # noqa: S102 - our own docs
    assert callable(getattr(module, name, None)), f"{name}: the example does not define {name}()"
    pm = pluggy.PluginManager("ftp")
    pm.add_hookspecs(hookspecs)
    pm.register(module, name="example")  # raises on argument names the hook does not have
    check(pm)
    assert [i.plugin_name for i in getattr(pm.hook, name).get_hookimpls()] == ["example"]


def test_the_commands_example_adds_a_working_command(tmp_path: Path) -> None:
    """ftp_commands' example is run for real: it adds its command to a group, which then counts a file."""
    import click
    from click.testing import CliRunner

    module = types.ModuleType("example_commands")
    block = re.findall(r"```python\n(.*?)```", section("ftp_commands"), flags=re.DOTALL)[-1]
    exec(compile(block, f"{DOC.name}#ftp_commands", "exec"), module.__dict__)  # noqa: S102 - our own docs
    group = click.Group("ftp")
    module.ftp_commands(cli=group)
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n{"messages": []}\n', encoding="utf-8")
    result = CliRunner().invoke(group, ["count-examples", str(data)])
    assert (result.exit_code, result.output) == (0, "2 examples\n")
