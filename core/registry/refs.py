"""Naming a registered version: ``NAME`` (the latest), ``NAME:3`` (version 3), ``NAME@alias`` (what an
alias such as ``champion`` points at). One parser, so every command reads references alike.

MLflow's reserved alias forms are references too: ``NAME@latest`` is ``NAME`` (the highest version
number, archived or not, as ``models:/NAME/latest``) and ``NAME@v3`` is ``NAME:3``; ``NAME:latest`` and
``NAME:v3`` read the same. They can be resolved but never set (``check_alias``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftp.errors import UserError
from ftp.types import ModelRegistry, ModelVersion

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # MLflow's rule for a settable alias
NUMBERED = re.compile(r"^[vV](\d+)$")


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return self.name + (f":{self.version}" if self.version is not None else "") + (f"@{self.alias}" if self.alias else "")


def is_reserved(alias: str) -> bool:
    """``latest`` (any case) and ``v<N>`` name versions, as in MLflow, so no alias may take them."""
    return alias.lower() == "latest" or NUMBERED.match(alias) is not None


def reserved_version(alias: str) -> int | None:
    """What a reserved form names: ``v3`` -> 3, ``latest`` -> None (the latest version)."""
    numbered = NUMBERED.match(alias)
    return int(numbered.group(1)) if numbered else None


def check_alias(alias: str) -> str:
    """``alias`` when it may be set (MLflow's rule: letters, digits, '_' and '-', at most 255 characters,
    neither ``latest`` nor ``v<N>``), else a one-line error saying why."""
    if is_reserved(alias):
        raise UserError(f"{alias!r} is a reserved alias (latest and v<N> name versions already); pick another "
                        "name, e.g. champion or challenger")
    if not ALIAS.match(alias):
        raise UserError(f"{alias!r}: an alias is 1 to 255 letters, digits, '_' or '-' (e.g. champion)")
    return alias


def _number(text: str, name: str, original: str) -> int | None:
    """The version a ``:VERSION`` part names: digits, ``v<N>`` or ``latest`` (None)."""
    if text.lower() == "latest":
        return None
    number = int(text) if text.isdigit() else reserved_version(text) if is_reserved(text) else 0
    if number is None or number < 1:
        raise UserError(f"{original}: the version must be a number from 1, e.g. {name}:1")
    return number


def parse_ref(text: str) -> VersionRef:
    """``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; a one-line error naming what is wrong otherwise."""
    name, colon, number = text.partition(":")
    name, at, alias = name.partition("@")
    if colon and at:
        raise UserError(f"{text}: give a version or an alias, not both (NAME:VERSION or NAME@ALIAS)")
    if not NAME.match(name):
        raise UserError(f"{text}: not a model name (letters, digits, '.', '_', '-'); e.g. ticket-triage:1")
    if colon:
        return VersionRef(name, version=_number(number, name, text))
    if at:
        if not NAME.match(alias):
            raise UserError(f"{text}: not an alias (letters, digits, '.', '_', '-'); e.g. {name}@champion")
        if is_reserved(alias):  # @latest, @v3: a version, not an alias
            return VersionRef(name, version=_number(alias, name, text))
        return VersionRef(name, alias=alias)
    return VersionRef(name)


def parse_version_ref(text: str) -> VersionRef:
    """A reference that must name one version exactly (``NAME:3``, ``NAME@alias``): commands that
    change a version refuse a bare ``NAME``, which would silently mean whichever version is newest."""
    ref = parse_ref(text)
    if ref.version is None and ref.alias is None:
        raise UserError(f"{text}: name the version, e.g. {ref.name}:1 or {ref.name}@champion")
    return ref


def _known_aliases(registry: ModelRegistry, name: str) -> str:
    held = registry.aliases(name)
    return ", ".join(f"{a} -> v{v}" for a, v in sorted(held.items())) or "none"


def resolve_number(registry: ModelRegistry, ref: VersionRef) -> int | None:
    """The version number ``ref`` names (None: the latest), following an alias through the registry."""
    if ref.alias is None:
        return ref.version
    lookup = getattr(registry, "alias", None)  # a third-party registry written before aliases has none
    if lookup is None:
        raise UserError(f"{ref}: the {registry.name} registry at {registry.location} keeps no aliases; "
                        f"name a version instead ({ref.name}:VERSION)")
    number = lookup(ref.name, ref.alias)
    if number is None:
        raise UserError(f"{ref}: no alias {ref.alias!r} for {ref.name} in {registry.location} (aliases: "
                        f"{_known_aliases(registry, ref.name)}); set it with ftp models alias {ref} VERSION")
    return int(number)


def resolve(registry: ModelRegistry, ref: VersionRef) -> ModelVersion:
    """The version ``ref`` names in ``registry``, or a UserError that lists what the registry holds."""
    version = registry.get(ref.name, resolve_number(registry, ref))
    if version is None:
        known = sorted({v.name for v in registry.list()})
        raise UserError(f"no model {str(ref)!r} in {registry.location}" + (f"; models: {', '.join(known)}" if known else ""))
    return version
