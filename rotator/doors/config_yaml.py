"""The config file's YAML: PyYAML's safe subset, with every mistake a :class:`ConfigError` on ``--config``.

One rule beyond PyYAML: a key written twice in one mapping (two ``connection_id`` lines in a
target, two ``gitlab:`` sections) is refused, naming its path and both lines. PyYAML would keep
the last silently, so an edit lower in the file could undo a reviewed setting without a trace.
Merge keys (``<<: *defaults``) still work: a key a merge brings in may be overridden once in the
mapping itself, as YAML intends; only keys written in the mapping itself are compared. ``<<``
itself is such a key: two ``<<:`` lines in one mapping are refused too (where both bring a key,
the last would win silently); ``<<: [*a, *b]`` merges several, the first listed winning.

:func:`load_located` also answers where a key is written (its line), so a config error can
say it; a document that does not parse is named with its line, column and why
(:mod:`rotator.doors.config_yaml_problems`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rotator.core.errors import ConfigError
from rotator.doors.config_yaml_problems import yaml_problem


if TYPE_CHECKING:
    _Base = yaml.SafeLoader
else:  # libyaml's C parser where PyYAML was built with it: 8x faster on a 1,000-target file,
    # which is most of a CronJob's idle run-once. The constructor (the Python part) is the same.
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"
_STR = "tag:yaml.org,2002:str"


@dataclass
class _DuplicateKeyError(Exception):
    mapping: yaml.MappingNode
    key: object
    first: yaml.Node
    second: yaml.Node


class _StrictLoader(_Base):
    """The safe loader, refusing a key written twice in one mapping."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Check ``node``'s own keys, then merge ``<<`` keys in as PyYAML does.

        Here rather than in ``construct_mapping``: flattening rewrites ``node.value`` (merged pairs
        first) and may run on a merged node before its own construction, so only the first call
        sees the keys as written. Nodes live as long as the load, so their ids stay unique.
        """
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicates(node)
        self._merge(node)

    def _merge(self, node: yaml.MappingNode) -> None:
        """Put the pairs ``<<`` brings in before the mapping's own, as YAML's merge key says.

        Not PyYAML's: 6.0's tells keys apart by the identity of their string objects, so of two
        merged mappings bringing ``connection_id`` the *last* listed wins where the spec (and the
        message suggesting ``<<: [*a, *b]``) says the first. Here keys are compared by value.
        """
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                if key_node.tag == _VALUE:  # PyYAML reads a bare `=` key as the string "="
                    key_node.tag = _STR
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    # PyYAML's own error (a YAMLError: "not valid YAML at line ..."), as it raises it.
                    problem = f"expected a mapping or list of mappings for merging, but found {source.id}"
                    raise yaml.constructor.ConstructorError(  # noqa: TRY003 - PyYAML's signature
                        "while constructing a mapping", node.start_mark, problem, source.start_mark
                    )
                self.flatten_mapping(source)
                merged.extend(source.value)
        if not merged:
            node.value = own
            return
        # The mapping's own keys win, then the first merged mapping bringing a key: each key is
        # kept once, so this node merged elsewhere in turn brings the winners only.
        seen = {_hashable(self.construct_object(key, deep=False)) for key, _ in own}
        first: list[tuple[yaml.Node, yaml.Node]] = []
        for pair in merged:
            key = _hashable(self.construct_object(pair[0], deep=False))
            if key in seen:
                continue
            seen.add(key)
            first.append(pair)
        node.value = first + own

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        seen: dict[object, yaml.Node] = {}
        merge: yaml.Node | None = None
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # compared by tag: a quoted "<<" is an ordinary key
                if merge is not None:
                    raise _DuplicateKeyError(node, "<<", merge, key_node)
                merge = key_node
                continue
            key = self.construct_object(key_node, deep=False)  # `1` and `0x1` are the same key
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: construct_mapping refuses it itself
                continue
            if first is not key_node:
                raise _DuplicateKeyError(node, key, first, key_node)


def _hashable(key: object) -> object:
    """``key``, or a value equal to no other if unhashable (construct_mapping refuses it itself)."""
    try:
        hash(key)
    except TypeError:
        return object()
    return key


#: Where a key path (``("targets", 0, "grace")``) is written: its 1-based line, or None if it is not.
Locate = Callable[[Sequence[str | int]], int | None]


def load_yaml(text: str, path: Path) -> object:
    """The document in ``text`` (read from ``path``), or a :class:`ConfigError` saying what is wrong."""
    return load_located(text, path)[0]


def load_located(text: str, path: Path) -> tuple[object, Locate]:
    """:func:`load_yaml`'s document, and where each of its keys is written (for error messages)."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        document = None if root is None else _construct(loader, root)
    except ConfigError:  # a key written twice, already worded: not "not valid YAML" below
        raise
    except yaml.YAMLError as error:
        raise ConfigError("--config", f"{path}: not valid YAML{yaml_problem(error, text)}") from None
    except Exception as error:  # noqa: BLE001 - PyYAML raises more than YAMLError on some documents:
        # ValueError for 2024-13-45 or 5000 digits, KeyError/IndexError/AttributeError for a bad !!bool,
        # !!int or !!timestamp, RecursionError for deep nesting.
        # Never the message: it would quote the offending value, which may be anything.
        raise ConfigError("--config", f"{path}: not valid YAML ({_unreadable(error)})") from None
    finally:
        loader.dispose()
    return document, lambda loc: _line_of(root, loc)


def _unreadable(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return "a value that looks like a date, a number or a !!tag cannot be read as one; quote it if it is text"


def _line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The line of the key (or list item) at ``loc``, following the loaded (merged) nodes."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not pairs:
                return None
            key_node, node = pairs[-1]  # after merging, a mapping's own key comes last
            line = key_node.start_mark.line + 1
        else:
            return None
    return line


def _construct(loader: _StrictLoader, root: yaml.Node) -> object:
    try:
        return loader.construct_document(root)
    except _DuplicateKeyError as duplicate:
        raise _duplicate_error(root, duplicate) from None


def _duplicate_error(root: yaml.Node, duplicate: _DuplicateKeyError) -> ConfigError:
    first, second = duplicate.first.start_mark.line + 1, duplicate.second.start_mark.line + 1
    lines = f"lines {first} and {second}" if first != second else f"line {first}, twice"
    where = _path_to(root, duplicate.mapping)
    key = f"{where}.{duplicate.key}" if where else str(duplicate.key)
    if duplicate.first.tag == _MERGE:
        problem = (
            f"is written twice, on {lines}; merge both in one: <<: [*a, *b] (the first listed wins"
            " where they share a key; two << lines would silently let the last win)"
        )
        return ConfigError(key, problem)
    return ConfigError(key, f"is written twice, on {lines}; keep one (YAML would silently use the last)")


def _path_to(root: yaml.Node, target: yaml.Node) -> str:
    """``targets[0].token``: the first path, in document order, from ``root`` to ``target``."""
    pending: list[tuple[yaml.Node, str]] = [(root, "")]
    visited: set[int] = set()  # an alias repeats a node; a recursive alias would loop
    while pending:
        node, path = pending.pop()
        if node is target:
            return path
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                children.append((value, f"{path}.{name}" if path else str(name)))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        pending.extend(reversed(children))  # popped from the end: first child first
    return ""
