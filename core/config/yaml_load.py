"""YAML for pipeline files, bounded: a hostile file is refused in one line before it can cost memory or
the stack.

PyYAML alone follows every alias (a 1 KB "billion laughs" file expands to gigabytes), recurses once
per nesting level (5,000 ``[`` overflow the stack) and lets a repeated key silently win. Here the
token stream is read first (the scanner does not recurse) to bound nesting, the composed node graph
is measured with aliases counted as often as they are used, and every mapping is checked for
repeated keys, all before any Python object is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from ftp.errors import ConfigError

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 64  # a pipeline file nests four or five levels; PyYAML and pydantic recurse per level
MAX_VALUES = 100_000  # after aliases are followed; a real pipeline file has a few hundred
MAX_DIGITS = 100  # Python refuses to parse integers over 4,300 digits, with a traceback
MAX_BYTES = 1 << 20  # a pipeline file is a few kilobytes
MERGE_TAG = "tag:yaml.org,2002:merge"
INT_TAG = "tag:yaml.org,2002:int"

_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
         yaml.FlowSequenceStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _fail(file: str, line: int | None, message: str, hint: str | None = None, key: str | None = None) -> ConfigError:
    return ConfigError(message, file=file, line=line, key=key, hint=hint)


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):  # a NUL or another control character in the file itself
        line = text.count("\n", 0, exc.position) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return _fail(file, line, f"invalid YAML: character {char} is not allowed in a YAML file",
                     "remove it (a NUL byte or control character, often from a binary file or a bad copy)")
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return _fail(file, mark.line + 1 if mark else None, f"invalid YAML: {problem}")


def _check_depth(text: str, file: str) -> None:
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise _fail(file, token.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels",
                            "a pipeline file needs a few levels; is this the right file?")
        elif isinstance(token, _CLOSE):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node, file: str) -> None:
    """Values and depth with aliases expanded, without expanding them (each node is measured once)."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            line = node.start_mark.line + 1
            if size[key] > MAX_VALUES:
                raise _fail(file, line, f"anchors and aliases expand to more than {MAX_VALUES:,} values",
                            "write the values out, or alias less (is this an alias bomb?)")
            if height[key] > MAX_DEPTH:
                raise _fail(file, line, f"nesting deeper than {MAX_DEPTH} levels once aliases are followed")
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _fail(file, node.start_mark.line + 1, "an alias refers to a value that contains it",
                        "a pipeline file cannot be recursive; write the value out")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: str) -> None:
    """Line of every key path, and refusal of repeated keys (PyYAML keeps the last one silently)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG and len(node.value) > MAX_DIGITS:
        raise _fail(file, node.start_mark.line + 1, f"a number with {len(node.value):,} digits",
                    "no setting needs more than a few", key=".".join(str(p) for p in path) or None)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            line = k.start_mark.line + 1
            if not isinstance(k, yaml.ScalarNode):
                raise _fail(file, line, "a key must be a name, not a list or a mapping",
                            key=".".join(str(p) for p in path) or None)
            if k.tag != MERGE_TAG:
                if k.value in seen:
                    dotted = ".".join(str(p) for p in path + (k.value,))
                    raise _fail(file, line, f"duplicate key (first at line {seen[k.value]})",
                                "a key may appear once in a mapping: keep one, merge the two", key=dotted)
                seen[k.value] = line
            lines[path + (k.value,)] = line
            _walk(v, path + (k.value,), lines, file)
            lines[path + (k.value,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), lines, file)


def load_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    """The document's data and the line of each key path; ConfigError (one line) for anything hostile."""
    try:
        _check_depth(text, file)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            lines: dict[KeyPath, int] = {}
            if node is None:
                return None, lines
            _measure(node, file)
            _walk(node, (), lines, file)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from None


def load_value(text: str, where: str, key: str) -> Any:
    """One value from the command line (``--set k=[1, 2]``), with the file's bounds."""
    try:
        data, _ = load_yaml(text, where)
    except ConfigError as exc:  # a command line has no lines: name the key instead
        raise ConfigError(exc.detail, file=where, key=key, hint=exc.hint) from None
    return data
