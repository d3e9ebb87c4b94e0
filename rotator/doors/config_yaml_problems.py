"""Why a config file is not valid YAML, in plain words, and where: `` at line 3, column 1: <why>``.

PyYAML's problems are a parser's ("did not find expected key", "found character that cannot
start any token"), and the C parser (libyaml) words them differently from the pure-Python one.
Both are mapped here onto the mistake people make: an unclosed bracket or quote, a tab in the
indentation, a key out of line. A problem not listed keeps PyYAML's own words, which still say
more than nothing.
"""

import re

import yaml


#: (a pattern of PyYAML's problem text, what it means). Both parsers' wordings, first match wins.
_PROBLEMS: tuple[tuple[str, str], ...] = (
    (r"tab character", "a tab character; YAML indents (and separates values) with spaces only"),
    (r"undefined alias", "an alias (*name) refers to no anchor (&name) written above it"),
    (r"duplicate anchor|second occurrence", "an anchor (&name) is defined twice"),
    (r"expected alphabetic or numeric", "an anchor or alias (& or *) needs a name after it"),
    (r"constructor for the tag", "an unknown tag (!...): the config is plain YAML, without custom tags"),
    (r"another document", "a second document (---); the config is one document"),
    (
        r"unknown escape",
        r"an unknown escape in a double-quoted value; write \\ for a backslash, or use single quotes",
    ),
    (r"unhashable key", "a key is a list or a mapping; a key is a plain name"),
    (r"for merging", "<< merges a mapping or a list of mappings only"),
    (
        r"mapping values are not allowed",
        (
            "a ': ' where no key can start: a key indented deeper than the one above it,"
            " or a value holding ': ' that needs quotes"
        ),
    ),
    (
        r"sequence entries are not allowed",
        "a list item ('- ') on the same line as its key; start the list on the next line",
    ),
    (
        r"expected '-' indicator|block collection",
        "a list's items must each start with '- ', at the same indentation",
    ),
    (
        r"expected key|expected <block end>",
        (
            "this line does not line up with the keys above it (check its indentation), or text follows"
            " a closing quote or bracket"
        ),
    ),
    (r"could not find expected ':'", "a key without ':' after it"),
    (r"expected node content|expected the node content", "a value is missing, or starts with ] or }"),
    (r"cannot start any token", "a value cannot start with {char}; put the value in quotes"),
)
_OPENERS = {"flow sequence": "[", "flow mapping": "{", "quoted scalar": "quote", "double-quoted": "quote"}


def yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """`` at line L, column C: <why>`` for ``error`` raised on ``text`` (no position if it has none)."""
    if isinstance(error, yaml.reader.ReaderError):  # a control character: PyYAML gives an offset only
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        return (
            f" at line {line}, column {column}: the character U+{error.character:04X} is not allowed in YAML"
        )
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{where}: {_why(error, text, mark)}"


def _why(error: yaml.YAMLError, text: str, mark: yaml.Mark | None) -> str:
    problem = str(getattr(error, "problem", None) or "")
    context = str(getattr(error, "context", None) or "")
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    char = line[mark.column] if mark and mark.column < len(line) else ""
    if char == "\t" or "\t" in line[: len(line) - len(line.lstrip())]:  # whatever the parser made of it
        return _PROBLEMS[0][1]
    opened = _opened(context, getattr(error, "context_mark", None))
    if opened and ("expected ','" in problem or "end of stream" in problem):
        return opened
    for pattern, meaning in _PROBLEMS:
        if re.search(pattern, problem + " " + context):
            return meaning.replace("{char}", repr(char) if char else "that character")
    return problem or context or "the parser stopped here"


def _opened(context: str, start: yaml.Mark | None) -> str | None:
    """``the [ opened at line 1, column 9 is never closed`` when ``context`` is an open bracket or quote."""
    opener = next((what for name, what in _OPENERS.items() if name in context), None)
    if opener is None or start is None:
        return None
    at = f"line {start.line + 1}, column {start.column + 1}"
    if opener == "quote":
        return f"the quote opened at {at} is never closed"
    closer = "]" if opener == "[" else "}"
    return f"the {opener} opened at {at} is never closed with {closer} (or lacks a comma between items)"
