"""`rotator validate` checks the config offline, and an unknown target name is named as typed.

Every run is the real command in process (:func:`tests.cli_harness.run_in_process`) with no
``ROTATOR_*`` variable but those a case sets: no secret is needed for either.
"""

import os

from pathlib import Path

import pytest

from tests.cli_harness import Result, run_in_process


_TARGET = "{{name: {name}, project: {project}, connection_id: {connection}, token: {{scopes: [api]}}}}"
_CONNECTIONS = ("3c90c3cc-0d44-4b50-8888-8dd25736052a", "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")


def _config(folder: Path, *, extra: str = "", state: str = "sqlite:///journal/state.db") -> Path:
    """Two targets, app-deploy and api-deploy, whose journal would be ``journal/state.db``."""
    targets = ", ".join(
        _TARGET.format(name=name, project=i + 1, connection=_CONNECTIONS[i])
        for i, name in enumerate(("app-deploy", "api-deploy"))
    )
    path = folder / "rotator.yaml"
    path.write_text(f"gitlab: {{url: https://gitlab.example.com}}\nstate: {{url: '{state}'}}\n{extra}")
    with path.open("a") as file:
        file.write(f"targets: [{targets}]\n")
    return path


def _run(*args: str, **variables: str) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}
    return run_in_process(list(args), {**env, **variables})


def test_a_valid_config_is_one_line_without_any_secret(tmp_path: Path) -> None:
    """No credential set: exit 0, one line with the target count and names, and no file created."""
    config = _config(tmp_path)
    done = _run("validate", "--config", str(config))
    assert done.code == 0, done.stderr
    assert done.stdout == f"ok: {config}: 2 target(s): app-deploy, api-deploy\n"
    assert done.stderr == ""
    assert [p.name for p in tmp_path.iterdir()] == ["rotator.yaml"]  # no journal, not even its folder


def test_validate_reads_rotator_config_too(tmp_path: Path) -> None:
    """With ROTATOR_CONFIG and no option, validate checks that file."""
    config = _config(tmp_path)
    done = _run("validate", ROTATOR_CONFIG=str(config))
    assert done.code == 0, done.stderr
    assert "2 target(s)" in done.stdout


@pytest.mark.parametrize(
    ("extra", "state", "key"),
    [
        ("defaults: {rotate_every: often}\n", "sqlite:///journal/state.db", "rotate_every"),
        ("defaults: {schedule: '0 0 31 2 *'}\n", "sqlite:///journal/state.db", "targets[0].schedule"),
        ("", "postgresql://rotator:pw-never-echoed@db/rotator", "state.url"),
    ],
)
def test_a_broken_config_is_exit_2_naming_the_key_as_every_command_says_it(
    tmp_path: Path, extra: str, state: str, key: str
) -> None:
    """A bad value, a schedule that never fires, a password in state.url: exit 2, the key, one text."""
    config = _config(tmp_path, extra=extra, state=state)
    done = _run("validate", "--config", str(config))
    assert done.code == 2
    assert key in done.stderr
    assert "pw-never-echoed" not in done.stderr
    assert done.stdout == ""
    # The same text as a command that would act on the file (with every secret it needs set).
    acting = _run(
        "--config",
        str(config),
        "run-once",
        ROTATOR_GITLAB_TOKEN="glpat-" + "x" * 20,
        ROTATOR_INFISICAL_TOKEN="t",
    )
    assert (acting.code, acting.stderr) == (2, done.stderr)
    assert [p.name for p in tmp_path.iterdir()] == ["rotator.yaml"]


def test_rotate_an_unknown_name_names_the_target_not_an_option(tmp_path: Path) -> None:
    """`rotate app-deplyo`: exit 2 naming what was typed, a did-you-mean and the configured names."""
    config = _config(tmp_path)
    done = _run("--config", str(config), "rotate", "app-deplyo")
    assert done.code == 2
    assert done.stderr == (
        "rotator: error: rotate NAME: no target named 'app-deplyo' (did you mean 'app-deploy'?);"
        " configured: app-deploy, api-deploy\n"
    )
    assert "--target" not in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["rotator.yaml"]


@pytest.mark.parametrize("command", ["run-once", "plan"])
def test_an_unknown_target_option_is_named_as_the_option(tmp_path: Path, command: str) -> None:
    """`run-once --target nope`: exit 2 on --target, the configured names, no guess for a far name."""
    config = _config(tmp_path)
    done = _run("--config", str(config), command, "--target", "nope")
    assert done.code == 2
    assert done.stderr == (
        "rotator: error: --target: no target named 'nope'; configured: app-deploy, api-deploy\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["rotator.yaml"]
