"""Config mistakes in the user's words: did-you-mean for unknown keys, no pydantic internals, YAML's why."""

import copy

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rotator.core.errors import ConfigError
from rotator.doors.config import load_config, parse_config
from rotator.doors.config_yaml_problems import yaml_problem
from tests.cli_harness import run_in_process


CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
#: A valid file; the line numbers below count from its first line.
GOOD = f"""\
gitlab:
  url: https://gitlab.example.com
infisical:
  url: https://app.infisical.com
state:
  url: sqlite:///rotator-state.db
daemon:
  jitter: 30s
notify:
  webhook_url: https://hooks.example.com/x
defaults:
  grace: 1h
  token:
    scopes: [api]
targets:
  - name: app-deploy
    project: 42
    connection_id: {CONN}
    token:
      lifetime: 30d
"""


def _data(**changes: object) -> dict[str, Any]:
    """A valid config as a dict, with ``changes`` at the top level."""
    data: dict[str, Any] = {
        "gitlab": {"url": "https://gitlab.example.com"},
        "targets": [
            {"name": "app-deploy", "project": 42, "connection_id": CONN, "token": {"scopes": ["api"]}}
        ],
    }
    data.update(changes)
    return data


def _load_error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "rotator.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value


def test_the_base_file_loads(tmp_path: Path) -> None:
    """The file the cases below break is valid, so each refusal is the edit's doing."""
    path = tmp_path / "rotator.yaml"
    path.write_text(GOOD)
    assert load_config(path).targets[0].grace == timedelta(hours=1)


# --- unknown keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "misspelt", "message"),
    [
        ("defaults:", "default:", "default: unknown key (line 11); did you mean defaults?"),
        ("targets:", "target:", "target: unknown key (line 15); did you mean targets?"),
        ("gitlab:", "gitlb:", "gitlb: unknown key (line 1); did you mean gitlab?"),
        (
            "  url: https://gitlab",
            "  ulr: https://gitlab",
            "gitlab.ulr: unknown key (line 2); did you mean url?",
        ),
        (
            "  url: https://app",
            "  URL: https://app",
            "infisical.URL: unknown key (line 4); did you mean url?",
        ),
        ("  url: sqlite", "  uri: sqlite", "state.uri: unknown key (line 6); did you mean url?"),
        ("  jitter:", "  jiter:", "daemon.jiter: unknown key (line 8); did you mean jitter?"),
        (
            "  webhook_url:",
            "  webhook-url:",
            "notify.webhook-url: unknown key (line 10); did you mean webhook_url?",
        ),
        (
            "  grace: 1h",
            "  grace : 1h\n  gracee: 1h",
            "defaults.gracee: unknown key (line 13); did you mean grace?",
        ),
        ("    scopes:", "    scope:", "defaults.token.scope: unknown key (line 14); did you mean scopes?"),
        ("    project:", "    projetc:", "targets[0].projetc: unknown key (line 17); did you mean project?"),
        (
            "    connection_id:",
            "    conection_id:",
            "targets[0].conection_id: unknown key (line 18); did you mean connection_id?",
        ),
        (
            "      lifetime:",
            "      life_time:",
            "targets[0].token.life_time: unknown key (line 20); did you mean lifetime?",
        ),
    ],
)
def test_an_unknown_key_names_its_path_line_and_the_key_meant(
    tmp_path: Path, written: str, misspelt: str, message: str
) -> None:
    """A misspelt key in any mapping: its full path, its line, and the nearest key that mapping takes."""
    assert written in GOOD
    assert str(_load_error(tmp_path, GOOD.replace(written, misspelt, 1))) == message


def test_a_misspelt_rotate_every_is_named_with_the_key_meant(tmp_path: Path) -> None:
    """The issue's example: ``rotate_evry`` in a target suggests ``rotate_every``."""
    error = _load_error(tmp_path, GOOD + "    rotate_evry: 7d\n")
    assert str(error) == "targets[0].rotate_evry: unknown key (line 21); did you mean rotate_every?"


def test_the_readmes_example_error_is_what_rotator_prints(tmp_path: Path) -> None:
    """README's Configuration section shows the line printed for a misspelt key on line 12."""
    text = (
        "gitlab:\n  url: https://gitlab.example.com\n  timeout: 30s\n"
        "defaults:\n  grace: 1h\n  token:\n    scopes: [api]\n"
        f"targets:\n  - name: app-deploy\n    project: 42\n    connection_id: {CONN}\n"
        "    rotate_evry: 7d\n"
    )
    assert text.splitlines()[11] == "    rotate_evry: 7d"
    line = f"rotator: error: {_load_error(tmp_path, text)}"
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"`{line}`" in readme


def test_an_unknown_key_like_no_other_lists_the_keys_taken(tmp_path: Path) -> None:
    """With no key close to it, the message lists what that mapping takes, in the documented order."""
    error = _load_error(tmp_path, GOOD.replace("  jitter: 30s\n", "  colour: red\n"))
    assert error.key == "daemon.colour"
    assert error.problem == (
        "unknown key (line 8); the keys here are listen, check_interval, jitter, shutdown_timeout,"
        " min_trigger_interval"
    )


def test_base_dir_is_not_a_key_of_the_file() -> None:
    """``base_dir`` (the folder rotator resolves paths against) cannot be set from the file."""
    data = _data(base_dir="/etc")
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert raised.value.key == "base_dir"
    assert raised.value.problem.startswith("unknown key; the keys here are gitlab, infisical, state, daemon")


def test_an_unquoted_yes_as_a_key_is_explained(tmp_path: Path) -> None:
    """``yes:`` is YAML's true: the message says so rather than suggest a key."""
    error = _load_error(tmp_path, GOOD + "    yes: 1\n")
    assert str(error) == "targets[0].true: unknown key: YAML reads yes, no, on and off unquoted as true"


@pytest.mark.parametrize(
    ("written", "misspelt", "first"),
    [
        ("defaults:", "default:", "default: unknown key (line 11); did you mean defaults?"),
        ("targets:", "target:", "target: unknown key (line 15); did you mean targets?"),
    ],
)
def test_a_misspelt_section_is_the_only_error_and_exits_2(
    tmp_path: Path, written: str, misspelt: str, first: str
) -> None:
    """``default:`` is reported as itself, not as its side effect (a target lacking the default scopes)."""
    config = tmp_path / "rotator.yaml"
    config.write_text(GOOD.replace(written, misspelt))
    done = run_in_process(["--config", str(config), "status"], {})
    assert done.code == 2
    assert done.stderr.splitlines() == [f"rotator: error: {first}"]


def test_a_misspelt_key_comes_before_the_key_it_leaves_missing(tmp_path: Path) -> None:
    """``conection_id`` is the mistake; ``connection_id: is required`` would only be its echo."""
    error = _load_error(tmp_path, GOOD.replace("    connection_id:", "    conection_id:"))
    assert error.key == "targets[0].conection_id"


# --- values, in the file's words --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  jitter: 30s",
            "  jitter: 2h",
            "daemon.jitter: must be from 0s to 1h, not 2h (line 8)",
        ),
        (
            "  url: https://gitlab.example.com",
            "  url: https://gitlab.example.com\n  timeout: 0s",
            "gitlab.timeout: must be from 1s to 1d, not 0s (line 3)",
        ),
        (
            "  jitter: 30s",
            "  check_interval: 2d",
            "daemon.check_interval: must be from 1s to 1d, not 2d (line 8)",
        ),
        (
            "  url: sqlite:///rotator-state.db",
            "  url: sqlite:///rotator-state.db\n  lease_ttl: 1s",
            "state.lease_ttl: must be from 5s to 1d, not 1s (line 7)",
        ),
        (
            "    scopes: [api]",
            "    scopes: api",
            "targets[0].token.scopes: must be a list, such as [api], not 'api' (line 14)",
        ),
        (
            "    project: 42",
            "    project: 42\n    hold_revoke_if_used: maybe",
            "targets[0].hold_revoke_if_used: must be true or false, not 'maybe' (line 18)",
        ),
        (
            f"    connection_id: {CONN}",
            "    connection_id: !!binary MTIzNDU2Nzg5MDEyMzQ1Ng==",  # 16 bytes: pydantic's UUID
            (
                "targets[0].connection_id: must be a UUID such as 3c90c3cc-0d44-4b50-8888-8dd25736052a"
                " (the Infisical connection's id), not binary data (!!binary) (line 18)"
            ),
        ),
        (
            "      lifetime: 30d",
            "      lifetime: 30d\n      access_level: 35",
            (
                "targets[0].token.access_level: must be a role name or one of 10, 15, 20, 30, 40 or 50,"
                " not 35 (line 21)"
            ),
        ),
        (
            "      lifetime: 30d",
            "      lifetime: 30d\n    rotate_before: 40d",
            "targets[0].rotate_before: must be shorter than token.lifetime (30d), not 40d (line 21)",
        ),
        (
            "      lifetime: 30d",
            "      lifetime: 30d\n    rotate_every: 1h",
            (
                "targets[0].grace: must be shorter than the time between rotations (1h: rotate_every,"
                " or lifetime - rotate_before), not 1h (line 12)"
            ),  # grace comes from defaults
        ),
        (
            "      lifetime: 30d",
            "      lifetime: 30d\n    schedule: '* *'",
            (
                'targets[0].schedule: must be a cron expression of 5 fields, such as "0 3 * * 1",'
                " not '* *' (line 21)"
            ),
        ),
        (
            "gitlab:\n  url: https://gitlab.example.com",
            "gitlab:\n  url:https://gitlab.example.com",
            (
                "gitlab: must be a mapping (key: value lines, indented under it),"
                " not text (a key needs a space after its colon: url: x) (line 1)"
            ),
        ),
        (
            "  url: https://gitlab.example.com\n",
            "  timeout: 30s\n",
            "gitlab.url: is required, such as https://gitlab.example.com (line 1)",
        ),
    ],
)
def test_a_bad_value_is_told_in_the_files_words(tmp_path: Path, old: str, new: str, message: str) -> None:
    """Bounds and values as the file writes them (1h, true, a list), the key's line at the end."""
    assert old in GOOD
    assert str(_load_error(tmp_path, GOOD.replace(old, new, 1))) == message


def test_no_targets_says_so() -> None:
    """An empty ``targets:`` list: "at least one target", not pydantic's tuple length."""
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(targets=[]))
    assert str(raised.value) == "targets: must list at least one target, not an empty list"


def test_an_empty_file_says_what_to_write(tmp_path: Path) -> None:
    """An empty file is named as such, with the two keys every config needs."""
    error = _load_error(tmp_path, "# nothing yet\n")
    assert str(error) == "(file): is empty; write gitlab: and targets: (see config/example.yaml)"


#: Every key of the file, as the README documents it; ``targets`` edits the first target.
KEYS: list[tuple[str, ...]] = [
    ("gitlab",), ("gitlab", "url"), ("gitlab", "timeout"), ("gitlab", "requests_per_minute"),
    ("infisical",), ("infisical", "url"), ("infisical", "timeout"), ("infisical", "reads_per_minute"),
    ("infisical", "writes_per_minute"), ("state",), ("state", "url"), ("state", "lease_ttl"),
    ("max_concurrent_rotations",),
    ("daemon",), ("daemon", "listen"), ("daemon", "check_interval"), ("daemon", "jitter"),
    ("daemon", "shutdown_timeout"), ("daemon", "min_trigger_interval"), ("notify",),
    ("notify", "webhook_url"), ("defaults",), ("targets",), ("targets", "*"),
    *(
        (where, field)
        for where in ("targets", "defaults")
        for field in (
            "token", "rotate_every", "rotate_before", "grace", "hold_revoke_if_used", "schedule",
        )
    ),
    *(("targets", field) for field in ("name", "project", "connection_id", "adopt_token_id")),
    *(
        (where, "token", field)
        for where in ("targets", "defaults")
        for field in ("name", "scopes", "access_level", "lifetime")
    ),
]  # fmt: skip
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["0s", "1s", "2d", "36h", "999999999d", "9" * 60 + "d", "api", "-1", "0", "a: b", "x" * 300]
    ),
    st.lists(st.integers() | st.text(max_size=3) | st.none(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers() | st.none(), max_size=2),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=20),
    st.binary(min_size=16, max_size=16),
)
#: Words of pydantic's (or Python's) that mean nothing to someone who wrote YAML.
INTERNALS = (
    "datetime.", "timedelta", "pydantic", "after validation", "Input should", "errors.pydantic.dev",
    "Tuple", "tuple", "dict_type", "Value error", "Field required", "Extra inputs", "instance of",
    "type=", "function-", "Settings", "TokenSpec", "UUID input", "Unable to parse", "NoneType", "<class",
    "[type", "bytes", "Assertion failed", "should have", "valid dictionary",
)  # fmt: skip


def _put(path: tuple[str, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(_data())
    if path == ("targets", "*"):
        data["targets"] = [value]
        return data
    node: dict[str, Any] = data["targets"][0] if path[0] == "targets" and len(path) > 1 else data
    for part in path[1:-1] if node is not data else path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return data


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(KEYS), value=WRONG)
@example(path=("gitlab", "timeout"), value="bytes")  # quoted back as the user wrote it: not an internal
def test_no_message_shows_pydantic_internals(path: tuple[str, ...], value: object) -> None:
    """Any value of any YAML type for every key: accepted, or refused naming a key in plain words."""
    error = _refusal(_put(path, value))
    if error is None:  # some values fit (a duration where one is taken, an int where a count is)
        return
    shown = str(error)
    # The message may quote what the user wrote ("'bytes' is not a duration"): those words are theirs.
    ours = shown.replace(value, "") if isinstance(value, str) and value else shown
    assert not [word for word in INTERNALS if word in ours], shown
    assert error.key not in {"", "(file)"}, shown
    assert "\n" not in shown, shown


def _refusal(data: object) -> ConfigError | None:
    try:
        parse_config(data)
    except ConfigError as error:
        return error
    return None


# --- values that may be credentials ----------------------------------------------------------------

#: What a careless operator may put where a mapping belongs: each holds a credential.
SECRET_TEXT = "S3cretPassw0rd-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            "state:\n  url: sqlite:///rotator-state.db",
            f"state: postgresql://rotator:{SECRET_TEXT}@db:5432/rotator",
            "state",
        ),
        (
            "notify:\n  webhook_url: https://hooks.example.com/x",
            f"notify: https://hooks.example.com/{SECRET_TEXT}",
            "notify",
        ),
        ("gitlab:\n  url: https://gitlab.example.com", f"gitlab: {SECRET_TEXT}", "gitlab"),
        ("    token:\n      lifetime: 30d", f"    token: {SECRET_TEXT}", "targets[0].token"),
    ],
)
def test_text_where_a_mapping_belongs_is_not_quoted(tmp_path: Path, old: str, new: str, key: str) -> None:
    """A section written as one line of text may be a credential (a database URL, a webhook, a token)."""
    assert old in GOOD
    config = tmp_path / "rotator.yaml"
    config.write_text(GOOD.replace(old, new, 1))
    done = run_in_process(["validate", "--config", str(config)], {})
    assert done.code == 2
    assert f"rotator: error: {key}: must be a mapping" in done.stderr
    assert SECRET_TEXT[:6] not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "content",
    [
        f"glpat-{SECRET_TEXT[:20]}\n",  # a token file passed as --config
        f"INFISICAL_CLIENT_SECRET={SECRET_TEXT}\nROTATOR_GITLAB_TOKEN=glpat-x\n",  # an env file
    ],
)
def test_a_file_of_one_text_is_not_quoted(tmp_path: Path, content: str) -> None:
    """``--config`` naming a secret's file by mistake: the error says what it is, never what it holds."""
    config = tmp_path / "secret"
    config.write_text(content)
    done = run_in_process(["validate", "--config", str(config)], {})
    assert done.code == 2
    assert done.stderr.startswith("rotator: error: (file): must be a mapping")
    assert SECRET_TEXT[:6] not in done.stderr + done.stdout


def test_a_token_written_as_a_key_is_redacted(tmp_path: Path) -> None:
    """A GitLab token pasted as a key (``glpat-...: x``) is named by its path, its value hidden."""
    token = f"glpat-{SECRET_TEXT[:20]}"
    config = tmp_path / "rotator.yaml"
    config.write_text(GOOD.replace("gitlab:\n", f"gitlab:\n  {token}: x\n", 1))
    done = run_in_process(["validate", "--config", str(config)], {})
    assert done.code == 2
    assert done.stderr.startswith("rotator: error: gitlab.[REDACTED]: unknown key")
    assert SECRET_TEXT[:6] not in done.stderr


# --- YAML that does not parse -----------------------------------------------------------------------


#: Common YAML slips and what rotator says of them (after ``not valid YAML``).
YAML_SLIPS: list[tuple[str, str]] = [
    (
        "gitlab: [unclosed\n",
        (
            "at line 2, column 1: the [ opened at line 1, column 9 is never closed with ]"
            " (or lacks a comma between items)"
        ),
    ),
    (
        "gitlab: {url: https://g\ntargets: []\n",
        (
            "at line 2, column 8: the { opened at line 1, column 9 is never closed with }"
            " (or lacks a comma between items)"
        ),
    ),
    (
        'gitlab:\n  url: "https://g\ntargets: []\n',
        "at line 4, column 1: the quote opened at line 2, column 8 is never closed",
    ),
    (
        "gitlab:\n  url: 'https://g\ntargets: []\n",
        "at line 4, column 1: the quote opened at line 2, column 8 is never closed",
    ),
    (
        "gitlab:\n\turl: https://g\n",
        "at line 2, column 1: a tab character; YAML indents (and separates values) with spaces only",
    ),
    (
        "gitlab:\n  url: https://g\n\ttimeout: 30s\n",
        "at line 3, column 1: a tab character; YAML indents (and separates values) with spaces only",
    ),
    (
        "gitlab:\n  url: https://g\n timeout: 30s\n",
        (
            "at line 3, column 2: this line does not line up with the keys above it (check its"
            " indentation), or text follows a closing quote or bracket"
        ),
    ),
    (
        "gitlab:\n  url: https://g\n    timeout: 30s\n",
        (
            "at line 3, column 12: a ': ' where no key can start: a key indented deeper than the one"
            " above it, or a value holding ': ' that needs quotes"
        ),
    ),
    (
        "targets:\n  - name: a\n  project: 1\n",
        "at line 3, column 3: a list's items must each start with '- ', at the same indentation",
    ),
    (
        "gitlab: *nope\n",
        ("at line 1, column 9: an alias (*name) refers to no anchor (&name) written above it"),
    ),
    ("gitlab: @x\n", "at line 1, column 9: a value cannot start with '@'; put the value in quotes"),
    ("a: 1\n---\nb: 2\n", "at line 2, column 1: a second document (---); the config is one document"),
    (
        "a: !env X\n",
        ("at line 1, column 4: an unknown tag (!...): the config is plain YAML, without custom tags"),
    ),
    (
        "a: - x\n",
        (
            "at line 1, column 4: a list item ('- ') on the same line as its key; start the list"
            " on the next line"
        ),
    ),
    ("a: \x07\n", "at line 1, column 4: the character U+0007 is not allowed in YAML"),
    (
        "a: 2024-13-45\n",
        (
            "(a value that looks like a date, a number or a !!tag cannot be read as one;"
            " quote it if it is text)"
        ),
    ),
]


@pytest.mark.parametrize(("text", "message"), YAML_SLIPS)
def test_a_yaml_error_says_why_as_well_as_where(tmp_path: Path, text: str, message: str) -> None:
    """Each common YAML slip: its line and column, and the mistake in plain words."""
    error = _load_error(tmp_path, text)
    assert error.key == "--config"
    assert error.problem == f"{tmp_path / 'rotator.yaml'}: not valid YAML {message}"


def test_a_yaml_error_exits_2_with_one_line(tmp_path: Path) -> None:
    """On the command line: exit 2, one stderr line with the position and the reason."""
    config = tmp_path / "rotator.yaml"
    config.write_text("gitlab:\n\turl: https://g\n")
    done = run_in_process(["--config", str(config), "status"], {})
    assert done.code == 2
    assert done.stderr.splitlines() == [
        (
            f"rotator: error: --config: {config}: not valid YAML at line 2, column 1: a tab character;"
            " YAML indents (and separates values) with spaces only"
        )
    ]


@pytest.mark.parametrize(("text", "message"), [(t, m) for t, m in YAML_SLIPS if m.startswith("at line")])
def test_the_pure_python_parser_gives_the_same_why(text: str, message: str) -> None:
    """Where PyYAML has no C parser its problems are worded otherwise; the reason shown is the same."""
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.load(text, Loader=yaml.SafeLoader)  # the pure-Python parser, on purpose
    why = yaml_problem(raised.value, text).split(": ", 1)[1]
    assert why == message.split(": ", 1)[1]


def test_a_target_named_unmanaged_is_refused() -> None:
    """``unmanaged`` is the expiry watch's owner label for tokens no target owns: no target may take it."""
    target = {"name": "unmanaged", "project": 42, "connection_id": CONN, "token": {"scopes": ["api"]}}
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(targets=[target]))
    assert str(raised.value).startswith("targets[0].name: unmanaged is reserved")
