"""The configuration contract: defaults, merging, and errors that name the key."""

import copy
import subprocess
import sys

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.config import load_config, parse_config
from rotator.errors import ConfigError


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
OTHER = "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71"
BASE: dict[str, Any] = {
    "gitlab": {"url": "https://gitlab.example.com"},
    "targets": [{"name": "app-deploy", "project": 42, "connection_id": CONN, "token": {"scopes": ["api"]}}],
}


def _with(**changes: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def _target(**fields: object) -> dict[str, Any]:
    return _with(targets=[{**BASE["targets"][0], **fields}])


def _error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    return raised.value


def test_defaults_of_the_contract() -> None:
    """Unset fields take the documented defaults."""
    config = parse_config(BASE)
    target = config.targets[0]
    assert config.infisical.url == "https://app.infisical.com"
    assert config.state.url == "sqlite:///rotator-state.db"
    assert config.gitlab.timeout == timedelta(seconds=30)
    assert target.token.access_level == 40
    assert target.token.lifetime == timedelta(days=30)
    assert target.renew_before == timedelta(days=10)
    assert target.grace == timedelta(hours=1)
    assert target.token_base_name == "app-deploy"


def test_defaults_merge_per_key_including_token() -> None:
    """A target's token.lifetime keeps defaults.token.scopes; target values win."""
    data = _with(
        defaults={"grace": "2h", "token": {"scopes": ["read_api"], "access_level": "developer"}},
        targets=[{"name": "a", "project": "acme/app", "connection_id": CONN, "token": {"lifetime": "60d"}}],
    )
    target = parse_config(data).targets[0]
    assert target.token.scopes == ("read_api",)
    assert target.token.access_level == 30
    assert target.token.lifetime == timedelta(days=60)
    assert target.grace == timedelta(hours=2)


def test_example_file_loads() -> None:
    """config/example.yaml is valid."""
    config = load_config(Path(__file__).parent.parent / "config" / "example.yaml")
    assert [t.name for t in config.targets] == ["app-deploy", "api-deploy"]


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        (_with(gitlab={}), "gitlab.url", "Field required"),
        (_with(gitlab={"url": "gitlab.example.com"}), "gitlab.url", "http(s) URL"),
        (_with(gitlab={"url": "https://g", "timeout": "30"}), "gitlab.timeout", "like 45s"),
        (_with(surprise=1), "surprise", "Extra inputs"),
        (_with(targets=[]), "targets", "at least 1"),
        (_target(name="App_Deploy"), "targets[0].name", "lowercase"),
        (_target(project="not a path"), "targets[0].project", "group/project"),
        (_target(connection_id="nope"), "targets[0].connection_id", "UUID"),
        (_target(token={"scopes": []}), "targets[0].token.scopes", "api or read_api"),
        (_target(token={"scopes": ["read_repository"]}), "targets[0].token.scopes", "api or read_api"),
        (_target(token={"scopes": ["apii"]}), "targets[0].token.scopes", "unknown scope(s) apii"),
        (_target(token={"scopes": ["api"], "lifetime": "400d"}), "targets[0].token.lifetime", "2d to 365d"),
        (_target(token={"scopes": ["api"], "lifetime": "36h"}), "targets[0].token.lifetime", "whole days"),
        (
            _target(token={"scopes": ["api"], "access_level": "boss"}),
            "targets[0].token.access_level",
            "not a role",
        ),
        (_target(token={"scopes": ["api"], "access_level": 35}), "targets[0].token.access_level", "40"),
        (_target(grace="2d", rotate_every="1d"), "targets[0].grace", "shorter than"),
        (_target(rotate_before="30d"), "targets[0].rotate_before", "shorter than token.lifetime"),
        (_with(defaults={"adopt_token_id": 3}), "defaults.adopt_token_id", "per target"),
        (_with(defaults=[1]), "defaults", "mapping"),
        ([1, 2], "(file)", "mapping"),
    ],
)
def test_errors_name_the_key(data: object, key: str, fragment: str) -> None:
    """Each mistake raises ConfigError with the key path and a helpful problem."""
    error = _error(data)
    assert error.key == key
    assert fragment in error.problem


@pytest.mark.parametrize(
    ("second", "key"),
    [
        ({"name": "app-deploy", "project": 43, "connection_id": OTHER}, "targets[1].name"),
        ({"name": "b", "project": 43, "connection_id": CONN}, "targets[1].connection_id"),
        (
            {
                "name": "b",
                "project": 42,
                "connection_id": OTHER,
                "token": {"scopes": ["api"], "name": "app-deploy"},
            },
            "targets[1].token.name",
        ),
    ],
)
def test_duplicates_are_refused(second: dict[str, Any], key: str) -> None:
    """Duplicate names, connection ids and (project, token name) pairs are errors naming the repeat."""
    data = _with(defaults={"token": {"scopes": ["api"]}}, targets=[BASE["targets"][0], second])
    error = _error(data)
    assert error.key == key
    assert "repeats targets[0]" in error.problem


def test_min_trigger_interval_defaults_to_a_minute_and_0s_turns_it_off() -> None:
    """daemon.min_trigger_interval is 1m unless set; 0s and the 1d ceiling are accepted."""
    assert parse_config(BASE).daemon.min_trigger_interval == timedelta(minutes=1)
    for written, value in (("0s", timedelta(0)), ("1d", timedelta(days=1)), ("90s", timedelta(seconds=90))):
        config = parse_config(_with(daemon={"min_trigger_interval": written}))
        assert config.daemon.min_trigger_interval == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2d", "from 0s (every trigger rotates) to 1d"),
        ("soon", "like 45s"),
        ("-1m", "not a duration"),
        ("", "duration"),
    ],
)
def test_a_bad_min_trigger_interval_exits_2_naming_the_key(tmp_path: Path, value: str, fragment: str) -> None:
    """A too long or malformed daemon.min_trigger_interval: exit 2, one line naming the key, no traceback."""
    config = tmp_path / "rotator.yaml"
    config.write_text(
        "gitlab: {url: https://gitlab.example.com}\n"
        f"daemon: {{min_trigger_interval: '{value}'}}\n"
        f"targets: [{{name: app, project: 1, connection_id: {CONN}, token: {{scopes: [api]}}}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "daemon"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("rotator: error: daemon.min_trigger_interval: ")
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "rotator-state.db").exists()


def test_load_config_reports_file_problems(tmp_path: Path) -> None:
    """A missing file, bad YAML and non-UTF-8 bytes are ConfigErrors on --config."""
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("gitlab: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"gitlab: {url: https://g\xe9}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin)
