"""The configuration contract: defaults, merging, and errors that name the key."""

import copy
import subprocess
import sys

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.errors import ConfigError
from rotator.doors.config import Config, load_config, parse_config
from rotator.doors.config_yaml import load_yaml


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
OTHER = "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71"
BASE: dict[str, Any] = {
    "gitlab": {"url": "https://gitlab.example.com"},
    "targets": [{"name": "app-deploy", "project": 42, "connection_id": CONN, "token": {"scopes": ["api"]}}],
}


def _rotator(config: Path, command: str) -> "subprocess.CompletedProcess[str]":
    """``python -m rotator --config CONFIG COMMAND`` as a process: the exit code and stderr are the point."""
    return subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
        (_with(gitlab={}), "gitlab.url", "is required, such as https://gitlab.example.com"),
        (_with(gitlab={"url": "gitlab.example.com"}), "gitlab.url", "http(s) URL"),
        (_with(gitlab={"url": "https://g", "timeout": "30"}), "gitlab.timeout", "like 45s"),
        (_with(surprise=1), "surprise", "unknown key; the keys here are gitlab, infisical,"),
        (_with(targets=[]), "targets", "must list at least one target, not an empty list"),
        (_target(name="App_Deploy"), "targets[0].name", "lowercase"),
        (_target(project="not a path"), "targets[0].project", "group/project"),
        (_target(connection_id="nope"), "targets[0].connection_id", "must be a UUID such as"),
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
        (
            _target(token={"scopes": ["api"], "access_level": 35}),
            "targets[0].token.access_level",
            "must be a role name or one of 10, 15, 20, 30, 40 or 50, not 35",
        ),
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
    done = _rotator(config, "daemon")
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


# --- durations carry a unit ----------------------------------------------------------------------

#: Where a duration may be written, and the key its error names (``defaults`` surface on the target).
DURATION_KEYS: list[tuple[tuple[str, ...], str]] = [
    (("gitlab", "timeout"), "gitlab.timeout"),
    (("infisical", "timeout"), "infisical.timeout"),
    (("state", "lease_ttl"), "state.lease_ttl"),
    (("daemon", "check_interval"), "daemon.check_interval"),
    (("daemon", "jitter"), "daemon.jitter"),
    (("daemon", "shutdown_timeout"), "daemon.shutdown_timeout"),
    *((("targets", field), f"targets[0].{field}") for field in ("rotate_every", "rotate_before", "grace")),
    *((("defaults", field), f"targets[0].{field}") for field in ("rotate_every", "rotate_before", "grace")),
    (("targets", "token", "lifetime"), "targets[0].token.lifetime"),
    (("defaults", "token", "lifetime"), "targets[0].token.lifetime"),
]


def _put_duration(where: tuple[str, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: dict[str, Any] = data["targets"][0] if where[0] == "targets" else data.setdefault(where[0], {})
    for part in where[1:-1]:
        node = node.setdefault(part, {})
    node[where[-1]] = value
    return data


@given(
    place=st.sampled_from(DURATION_KEYS),
    number=st.integers() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_a_bare_number_is_never_a_duration(place: tuple[tuple[str, ...], str], number: float) -> None:
    """Any bare int or float, for every duration key: refused naming the key and asking for a unit."""
    where, key = place
    error = _error(_put_duration(where, number))
    assert error.key == key
    assert "write a unit, e.g. 7d" in error.problem


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("!!binary UDFE", "binary data (!!binary)"),  # the bytes P1D
        ("!!binary MTI6MzA=", "binary data (!!binary)"),  # the bytes 12:30
        ("2026-01-01", "a date"),
        ("[1d]", "a list"),
        ("{days: 1}", "a mapping"),
        ("", "an empty value"),
    ],
)
def test_a_duration_that_is_not_text_is_refused(tmp_path: Path, value: str, kind: str) -> None:
    """A YAML value that is not text (``!!binary``, a date, a list): refused naming the key, never parsed."""
    error = _load_error(tmp_path, TARGET_YAML.replace("  grace: 2h\n", f"  grace: {value}\n"))
    assert error.key == "targets[0].grace"
    assert error.problem.startswith(f"{kind} is not a duration; write a whole number and a unit")


@pytest.mark.parametrize("value", ["\u0663d", "\uff11\uff12h", "\U0001d7d1d"])
def test_a_duration_in_other_digits_is_refused(value: str) -> None:
    """Arabic-Indic, fullwidth or mathematical digits are not a duration: only 0-9 count."""
    error = _error(_put_duration(("defaults", "grace"), value))
    assert error.key == "targets[0].grace"
    assert "is not a duration" in error.problem


def test_a_binary_duration_exits_2_with_one_line(tmp_path: Path) -> None:
    """``grace: !!binary UDFE`` on the command line: exit 2, one line naming the key, no traceback."""
    config = tmp_path / "rotator.yaml"
    config.write_text(TARGET_YAML.replace("  grace: 2h\n", "  grace: !!binary UDFE\n"))
    done = _rotator(config, "status")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("rotator: error: targets[0].grace: binary data (!!binary) is not a duration")


@pytest.mark.parametrize(("where", "key"), DURATION_KEYS)
def test_every_duration_key_takes_a_unit(where: tuple[str, ...], key: str) -> None:
    """The same keys accept a duration with its unit, so the refusal above is the bare number's doing."""
    value, expected = (
        ("2d", timedelta(days=2)) if where[0] in {"targets", "defaults"} else ("30s", timedelta(seconds=30))
    )
    if where[-1] == "lifetime":
        value, expected = "60d", timedelta(days=60)
    node: object = parse_config(_put_duration(where, value))
    for part in key.replace("[0]", ".0").split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)  # type: ignore[index]
    assert node == expected


# --- duplicate keys ------------------------------------------------------------------------------

TARGET_YAML = f"""\
gitlab:
  url: https://gitlab.example.com
defaults: &common
  grace: 2h
  token: {{scopes: [api]}}
targets:
  - name: app-deploy
    project: 42
    connection_id: {CONN}
"""


def _load_text(tmp_path: Path, text: str) -> object:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    return load_config(path)


def _load_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        _load_text(tmp_path, text)
    return raised.value


TWICE_GRACE = TARGET_YAML.replace("  grace: 2h\n", "  grace: 2h\n  grace: 5m\n")
TWICE_SCOPES = TARGET_YAML.replace("{scopes: [api]}", "{scopes: [api], scopes: [read_api]}")


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (TARGET_YAML + f"    connection_id: {OTHER}\n", "targets[0].connection_id", "lines 9 and 10"),
        (TARGET_YAML + "gitlab:\n  url: https://evil.example.com\n", "gitlab", "lines 1 and 10"),
        (TWICE_GRACE, "defaults.grace", "lines 4 and 5"),
        (TWICE_SCOPES, "defaults.token.scopes", "line 5, twice"),
        (TARGET_YAML + '    "project": 43\n', "targets[0].project", "lines 8 and 10"),
    ],
)
def test_a_key_written_twice_is_refused_naming_both_lines(
    tmp_path: Path, text: str, key: str, lines: str
) -> None:
    """Two lines for one key in one mapping: refused naming the key's path and both lines, not last-wins."""
    error = _load_error(tmp_path, text)
    assert error.key == key
    assert f"written twice, on {lines}" in error.problem


def test_merge_keys_still_merge_and_may_be_overridden(tmp_path: Path) -> None:
    """``<<: *anchor`` then the same key written once more overrides the merged value, as YAML means."""
    text = TARGET_YAML + "    <<: *common\n    grace: 3h\n"
    config = _load_text(tmp_path, text)
    assert isinstance(config, Config)
    assert config.targets[0].grace == timedelta(hours=3)
    assert config.targets[0].token.scopes == ("api",)


def test_merges_of_merges_and_a_merge_list_still_work(tmp_path: Path) -> None:
    """A merged mapping that itself merges and overrides, and ``<<: [*a, {...}]``, load as they always did."""
    text = (
        "gitlab: {url: https://gitlab.example.com}\n"
        "defaults: &base\n"
        "  <<: {grace: 1h, token: {scopes: [api]}}\n"
        "  grace: 2h\n"
        "targets:\n"
        f"  - {{<<: *base, name: a, project: 42, connection_id: {CONN}}}\n"
        "  - <<: [*base, {rotate_before: 5d}]\n"
        f"    name: b\n    project: 43\n    connection_id: {OTHER}\n"
    )
    config = _load_text(tmp_path, text)
    assert isinstance(config, Config)
    assert [t.grace for t in config.targets] == [timedelta(hours=2)] * 2
    assert config.targets[1].rotate_before == timedelta(days=5)


TWO_MERGES = (
    "gitlab: {url: https://gitlab.example.com}\n"
    "defaults:\n"
    "  token: &a {scopes: [api]}\n"
    "targets:\n"
    "  - name: app\n"
    "    project: 42\n"
    f"    connection_id: {CONN}\n"
    "    token: &b {scopes: [read_api], lifetime: 30d}\n"
    "  - name: api\n"
    "    project: 43\n"
    f"    connection_id: {OTHER}\n"
    "    token:\n"
    "      <<: *a\n"
    "      <<: *b\n"
)


def test_two_merge_lines_in_one_mapping_are_refused_suggesting_one_list(tmp_path: Path) -> None:
    """``<<: *a`` then ``<<: *b`` (both bringing scopes) is refused naming both lines, not last-wins."""
    error = _load_error(tmp_path, TWO_MERGES)
    assert error.key == "targets[1].token.<<"
    assert error.problem.startswith("is written twice, on lines 13 and 14; merge both in one: <<: [*a, *b]")


def test_a_merge_list_merges_both_the_first_listed_winning(tmp_path: Path) -> None:
    """The suggested ``<<: [*a, *b]`` loads, taking a key both bring from the first listed."""
    config = _load_text(tmp_path, TWO_MERGES.replace("      <<: *a\n      <<: *b\n", "      <<: [*a, *b]\n"))
    assert isinstance(config, Config)
    assert config.targets[1].token.scopes == ("api",)
    assert config.targets[1].token.lifetime == timedelta(days=30)


_MERGE_KEYS = st.sampled_from(["grace", "scopes", "connection_id", "name", "project"])
_FLAT = st.dictionaries(_MERGE_KEYS, st.integers(0, 9), max_size=5)


@given(st.lists(_FLAT, min_size=1, max_size=4), _FLAT)
def test_a_merge_list_is_first_listed_wins_then_own_keys(
    sources: list[dict[str, int]], own: dict[str, int]
) -> None:
    """``{<<: [*m0, *m1, ...], ...}``: each key from the mapping itself, else from the first bringing it."""
    lines = [f"m{i}: &m{i} {{{', '.join(f'{k}: {v}' for k, v in m.items())}}}" for i, m in enumerate(sources)]
    aliases = ", ".join(f"*m{i}" for i in range(len(sources)))
    lines.append(f"out: {{<<: [{aliases}]{''.join(f', {k}: {v}' for k, v in own.items())}}}")
    expected: dict[str, int] = {}
    for mapping in reversed(sources):
        expected.update(mapping)
    expected.update(own)
    document = load_yaml("\n".join(lines) + "\n", Path("rotator.yaml"))
    assert isinstance(document, dict)
    assert document["out"] == expected


def test_two_merge_lines_exit_2_with_one_line(tmp_path: Path) -> None:
    """The CLI on a config with two ``<<:`` lines: exit 2, one stderr line naming the key, no traceback."""
    config = tmp_path / "rotator.yaml"
    config.write_text(TWO_MERGES)
    done = _rotator(config, "status")
    assert done.returncode == 2
    line = (
        "rotator: error: targets[1].token.<<: is written twice, on lines 13 and 14;"
        " merge both in one: <<: [*a, *b] (the first listed wins where they share a key;"
        " two << lines would silently let the last win)"
    )
    assert done.stderr.splitlines() == [line]


# --- the file itself ------------------------------------------------------------------------------


def test_a_config_over_1_mib_is_refused_naming_the_bound(tmp_path: Path) -> None:
    """A config file larger than 1 MiB (a log, an image) is refused on --config, not read into memory."""
    path = tmp_path / "rotator.yaml"
    path.write_text("# padding\n" * (110 * 1024))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.key == "--config"
    assert "larger than 1 MiB" in raised.value.problem
