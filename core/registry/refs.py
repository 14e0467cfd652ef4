"""Naming a registered version: ``NAME`` (the latest), ``NAME:3`` (version 3), ``NAME@alias`` (what an
alias such as ``production`` points at). One parser, so every command reads references alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftp.errors import UserError
from ftp.types import ModelRegistry, ModelVersion

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return self.name + (f":{self.version}" if self.version is not None else "") + (f"@{self.alias}" if self.alias else "")


def parse_ref(text: str) -> VersionRef:
    """``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; a one-line error naming what is wrong otherwise."""
    name, colon, number = text.partition(":")
    name, at, alias = name.partition("@")
    if colon and at:
        raise UserError(f"{text}: give a version or an alias, not both (NAME:VERSION or NAME@ALIAS)")
    if not NAME.match(name):
        raise UserError(f"{text}: not a model name (letters, digits, '.', '_', '-'); e.g. ticket-triage:1")
    if colon:
        if not number.isdigit() or int(number) < 1:
            raise UserError(f"{text}: the version must be a number from 1, e.g. {name}:1")
        return VersionRef(name, version=int(number))
    if at:
        if not NAME.match(alias):
            raise UserError(f"{text}: not an alias (letters, digits, '.', '_', '-'); e.g. {name}@production")
        return VersionRef(name, alias=alias)
    return VersionRef(name)


def resolve(registry: ModelRegistry, ref: VersionRef) -> ModelVersion:
    """The version ``ref`` names in ``registry``, or a UserError that lists what the registry holds."""
    number = ref.version
    if ref.alias is not None:
        lookup = getattr(registry, "alias", None)  # a registry that keeps aliases answers alias(name, alias)
        if lookup is None:
            raise UserError(f"{ref}: the {registry.name} registry at {registry.location} keeps no aliases; "
                            f"name a version instead ({ref.name}:VERSION)")
        number = lookup(ref.name, ref.alias)
        if number is None:
            raise UserError(f"{ref}: no alias {ref.alias!r} for {ref.name} in {registry.location}")
    version = registry.get(ref.name, number)
    if version is None:
        known = sorted({v.name for v in registry.list()})
        raise UserError(f"no model {str(ref)!r} in {registry.location}" + (f"; models: {', '.join(known)}" if known else ""))
    return version
