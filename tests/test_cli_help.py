"""The command line teaches: every command's --help, the top-level help, and shell completion.

Each help is the real ``rotator … --help`` output, run in process (:func:`tests.cli_harness.run_in_process`).
"""

import argparse
import os
import re

from pathlib import Path

import pytest

from rotator.doors.cli import build_parser
from tests.cli_harness import run_in_process


_DOORS = Path(__file__).parents[1] / "rotator" / "doors"
#: The modules that read rotator's environment variables: a variable named in a help is read in one.
_READERS = ("environment.py", "options.py", "wiring.py", "hooks.py")
_VARIABLE = re.compile(r"\bROTATOR_[A-Z_]*[A-Z]")


def _commands() -> list[str]:
    """Every command the parser knows, walked from the parser itself (not from the help table)."""
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001 - argparse offers no public walk
    return list(sub.choices)


def _help(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    shown = run_in_process([*args, "--help"], env)
    assert shown.code == 0, shown.stderr
    return shown.stdout


def _section(text: str, title: str) -> str:
    """The lines under ``title:`` up to the next blank line."""
    match = re.search(rf"^{title}:\n((?:  .*\n?)+)", text, re.MULTILINE)
    assert match is not None, f"no {title!r} section in:\n{text}"
    return match.group(1)


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_has_a_description_environment_exit_codes_and_an_example(command: str) -> None:
    """`rotator COMMAND --help`: a description paragraph, its environment, its exit codes, an example."""
    text = _help(command)
    description = text.split("\n\n")[1]  # after the usage block
    assert not description.startswith(("positional arguments", "options")), text
    assert len(description) > 40, description
    assert _section(text, "environment").strip()
    codes = _section(text, "exit codes")
    assert codes.lstrip().startswith("0 "), codes
    assert re.search(rf"^  .*\brotator\b.*\b{command}\b", _section(text, "example"), re.MULTILINE), text


def _read_by_rotator() -> set[str]:
    """Every ROTATOR_* name a reading module spells as a string literal, and its ``_FILE`` twin."""
    names = set()
    for module in _READERS:
        names |= set(re.findall(r'"(ROTATOR_[A-Z_]+)"', (_DOORS / module).read_text()))
    return names | {f"{name}_FILE" for name in names}


@pytest.mark.parametrize("command", [None, *_commands()])
def test_help_names_only_variables_rotator_reads(command: str | None) -> None:
    """Every ROTATOR_* variable a help names is one rotator's reading code spells out (no stale name)."""
    text = _help(*([command] if command else []))
    named = set(_VARIABLE.findall(text.replace("[_FILE]", "")))
    assert named <= _read_by_rotator(), named - _read_by_rotator()


def test_top_level_help_names_the_required_variables() -> None:
    """`rotator --help` names the config variable and both credentials, in both Infisical forms."""
    text = _help()
    for variable in (
        "ROTATOR_CONFIG",
        "ROTATOR_GITLAB_TOKEN",
        "ROTATOR_INFISICAL_TOKEN",
        "ROTATOR_INFISICAL_CLIENT_ID",
        "ROTATOR_INFISICAL_CLIENT_SECRET",
    ):
        assert variable in text, variable
    assert "exit codes:" in text


@pytest.mark.parametrize("command", ["run-once", "rotate", "plan", "check", "daemon"])
def test_the_commands_that_call_upstream_name_the_credentials(command: str) -> None:
    """The commands that read the secrets say so in their environment section."""
    environment = _section(_help(command), "environment")
    assert "ROTATOR_GITLAB_TOKEN[_FILE]" in environment
    assert "ROTATOR_INFISICAL_CLIENT_SECRET[_FILE]" in environment
    assert ("ROTATOR_API_TOKEN" in environment) == (command == "daemon")


@pytest.mark.parametrize("command", ["history", "validate"])
def test_the_offline_commands_name_no_secret(command: str) -> None:
    """`history` and `validate` read the config variable only: their help names no credential."""
    assert _VARIABLE.findall(_section(_help(command), "environment")) == ["ROTATOR_CONFIG"]


def test_status_names_the_secrets_for_live_only() -> None:
    """`status` reads the config alone; its help names the credentials as read with --live only."""
    environment = _section(_help("status"), "environment")
    rows = [row for row in environment.splitlines() if "ROTATOR_GITLAB_TOKEN" in row]
    assert rows == [rows[0]]
    assert "with --live only" in rows[0]
    assert "ROTATOR_INFISICAL_CLIENT_SECRET[_FILE]" in environment


def test_bash_completion_knows_every_command() -> None:
    """`rotator completion bash` prints a script naming every command and the global options."""
    env = dict(os.environ)
    done = run_in_process(["completion", "bash"], env)
    assert done.code == 0, done.stderr
    [listed] = re.findall(r"^_shtab_rotator_subparsers=\((.*)\)$", done.stdout, re.MULTILINE)
    assert set(listed.split()) == set(_commands())
    assert "--log-level" in done.stdout


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_completion_for_the_other_shells(shell: str) -> None:
    """The zsh and tcsh scripts are printed too, each mentioning the commands."""
    done = run_in_process(["completion", shell], dict(os.environ))
    assert done.code == 0, done.stderr
    assert "run-once" in done.stdout
    assert "validate" in done.stdout


def test_completion_for_an_unknown_shell_is_a_usage_error() -> None:
    """`rotator completion fish` exits 2 listing the shells it knows."""
    done = run_in_process(["completion", "fish"], dict(os.environ))
    assert done.code == 2
    assert "bash" in done.stderr
