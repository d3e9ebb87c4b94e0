"""Broken configs and environments, generated: each exits 2 naming the key at fault, never a traceback.

Every case starts from the configuration and secrets that ``tests/cli_harness.py`` writes for the
fakes (the baseline tests prove ``plan`` and ``check`` accept them) and breaks it on purpose. The
generated cases run ``rotator.doors.cli.main`` in-process (``plan``, which reads the config, every secret
and the journal's location before anything else); a few plain subprocesses prove the same for the
real process.

What the product accepts on purpose is not generated as "bad": pydantic's lax coercions of
``"5"``/``5.0`` to an int, ``yes``/``on``/``1`` to a boolean, ``" 5m "`` with spaces, and
non-ASCII decimal digits in a duration. A bare number as a duration is bad: it has no unit.
"""

import copy
import os
import re
import string
import subprocess
import sys
import tempfile

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.core.redact import printable
from rotator.doors.config import ACCESS_LEVELS, TOKEN_SCOPES
from rotator.testing import Fakes, start_fakes
from tests.cli_harness import CONNECTIONS, Harness, run_in_process
from tests.faults import ledger


GITLAB = "ROTATOR_GITLAB_TOKEN"
INFISICAL = "ROTATOR_INFISICAL_TOKEN"
CLIENT_ID = "ROTATOR_INFISICAL_CLIENT_ID"
CLIENT_SECRET = "ROTATOR_INFISICAL_CLIENT_SECRET"
SECRET_NAMES = (GITLAB, INFISICAL, CLIENT_ID, CLIENT_SECRET)
CLOCK_OFFSET = "ROTATOR_TEST_CLOCK_OFFSET"
TARGETS = (0, 1)
#: Fields a target names itself; ``defaults`` may not hold them.
PER_TARGET = ("name", "project", "connection_id", "adopt_token_id")
#: The keys each section knows.
KNOWN = {
    "top": {"gitlab", "infisical", "state", "max_concurrent_rotations", "defaults", "targets"},
    "gitlab": {"url", "timeout", "requests_per_minute"},
    "infisical": {"url", "timeout", "reads_per_minute", "writes_per_minute"},
    "state": {"url"},
    "target": {*PER_TARGET, "token", "rotate_every", "rotate_before", "grace", "hold_revoke_if_used"},
    "token": {"name", "scopes", "access_level", "lifetime"},
}
#: In-process runs take milliseconds; the whole module stays near 15 s.
GENERATED = settings(max_examples=300, deadline=None)


# --- running rotator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a run of rotator left: its exit code and both streams."""

    code: object
    stdout: str
    stderr: str


def _in_process(argv: Sequence[str], env: Mapping[str, str]) -> Outcome:
    """``main(argv)`` as the process would run it, with ``env`` as its only ``ROTATOR_*`` variables."""
    done = run_in_process(
        list(argv), {**{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}, **env}
    )
    return Outcome(done.code, done.stdout, done.stderr)


def _subprocess(config: Path, env: Mapping[str, str], timeout: float = 60) -> Outcome:
    """``python -m rotator --config CONFIG plan`` with ``env`` as its only ``ROTATOR_*`` variables."""
    ledger.count("runs")
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(config), "plan"],
        capture_output=True,
        encoding="utf-8",
        errors="backslashreplace",
        timeout=timeout,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")}, **env},
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def _assert_refused(outcome: Outcome, keys: Sequence[str], what: object) -> None:
    """Exit 2; stdout empty; stderr is warnings then ``rotator: error: KEY: problem``; no traceback."""
    shown = f"{what}\nexit code {outcome.code!r}\nstdout: {outcome.stdout!r}\nstderr: {outcome.stderr}"
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    assert outcome.code == 2, shown
    assert outcome.stdout == "", shown
    named = "|".join(f"(?:{key})" for key in keys)
    line = rf"(?:rotator: warning: [^\n]*\n)*rotator: error: (?:{named}): [^\n]+\n"
    assert re.fullmatch(line, outcome.stderr), f"the error must name one of {keys}\n{shown}"


# --- the valid baseline ----------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """The harness's valid config and the fakes' credentials."""

    config: dict[str, Any]
    seed_values: dict[str, str]


@pytest.fixture(scope="module")
def servers() -> Iterator[Fakes]:
    """Both fakes for the whole module; only the baseline really talks to them."""
    with start_fakes() as running:
        yield running


@pytest.fixture(scope="module")
def baseline(servers: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The config ``Harness`` writes, read back, and every secret value the fakes accept."""
    folder = tmp_path_factory.mktemp("baseline")
    Harness(servers, folder)
    seed = servers.seed
    return Baseline(
        config=yaml.safe_load((folder / "rotator.yaml").read_text()),
        seed_values={
            GITLAB: seed.manager_token,
            INFISICAL: seed.infisical_token,
            CLIENT_ID: seed.infisical_client_id,
            CLIENT_SECRET: seed.infisical_client_secret,
        },
    )


Mode = Literal["client", "token"]


def _secrets(base: Baseline, mode: Mode, as_files: frozenset[str], folder: Path) -> dict[str, str]:
    """A valid environment: Universal Auth or an access token, the names in ``as_files`` as NAME_FILE."""
    names = (GITLAB, INFISICAL) if mode == "token" else (GITLAB, CLIENT_ID, CLIENT_SECRET)
    env: dict[str, str] = {}
    for name in names:
        if name in as_files:
            path = folder / f"{name.lower()}.txt"
            path.write_text(base.seed_values[name] + "\n")
            env[f"{name}_FILE"] = str(path)
        else:
            env[name] = base.seed_values[name]
    return env


def _write(folder: Path, document: object) -> Path:
    path = folder / "rotator.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("mode", ["client", "token"])
@pytest.mark.parametrize("as_files", [False, True])
@pytest.mark.parametrize("command", ["plan", "check"])
def test_the_baseline_passes(baseline: Baseline, mode: Mode, as_files: bool, command: str) -> None:
    """The unbroken config and environment exit 0, so each refusal below is the breakage's doing."""
    ledger.count("cases")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = frozenset(SECRET_NAMES) if as_files else frozenset()
        env = _secrets(baseline, mode, files, folder)
        outcome = _in_process(["--config", str(_write(folder, baseline.config)), command], env)
    assert (outcome.code, "Traceback" in outcome.stderr) == (0, False), outcome


# --- config edits ----------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()


@dataclass(frozen=True)
class _CopyOf:
    """At apply time, the value found at ``source``."""

    source: Path_


@dataclass(frozen=True)
class Edit:
    """One breaking change to the config document and the key (a regex) the refusal must name."""

    what: str
    changes: tuple[tuple[Path_, object], ...]
    key: str

    def apply(self, document: dict[str, Any]) -> dict[str, Any] | None:
        """The edited copy of ``document``, or ``None`` when an earlier edit removed a path it needs."""
        edited = copy.deepcopy(document)
        for path, value in self.changes:
            if not _put(edited, path, value):
                return None
        return edited


def _get(node: object, path: Path_) -> tuple[bool, object]:
    for part in path:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            continue
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        return False, None
    return True, node


def _put(document: dict[str, Any], path: Path_, value: object) -> bool:
    found, parent = _get(document, path[:-1])
    last = path[-1]
    if isinstance(value, _CopyOf):
        found_value, value = _get(document, value.source)
        found = found and found_value
    if not found:
        return False
    if isinstance(parent, dict) and isinstance(last, str):
        if value is DELETE:
            return parent.pop(last, DELETE) is not DELETE
        parent[last] = copy.deepcopy(value)
        return True
    if isinstance(parent, list) and isinstance(last, int) and last <= len(parent) and value is not DELETE:
        parent[last : last + 1] = [copy.deepcopy(value)]
        return True
    return False


def _key(path: Path_, *, as_written: bool = False) -> str:
    """The regex of the key an error at ``path`` names; ``defaults`` fields surface on a target.

    An unknown key (``as_written``) is named where it is written, ``defaults`` included.
    """
    if (
        path == ("defaults", "token") and not as_written
    ):  # a target with its own token: then it lacks the default scopes
        return r"targets\[\d+\]\.token(?:\.scopes)?"
    text = ""
    if not as_written and len(path) > 1 and path[0] == "defaults" and path[1] not in PER_TARGET:
        text, path = r"targets\[\d+\]", path[1:]
    for part in path:
        # A control or format character in a key (an invisible soft hyphen) is named escaped.
        text += (
            rf"\[{part}\]" if isinstance(part, int) else ("\\." if text else "") + re.escape(printable(part))
        )
    return text + r"(?:\[\d+\])?"  # a list's bad item is named by its index


def _edits(what: str, paths: Sequence[Path_], values: st.SearchStrategy[object]) -> st.SearchStrategy[Edit]:
    """``paths[i] := value`` for a drawn path and value; the error names that path."""
    return st.tuples(st.sampled_from(paths), values).map(
        lambda pv: Edit(what, ((pv[0], pv[1]),), _key(pv[0])),
    )


def _wrapped_edits(
    what: str, paths: Sequence[Path_], field: str, values: st.SearchStrategy[object]
) -> st.SearchStrategy[Edit]:
    """``paths[i] := {field: value}`` (a target's own ``token:``); the error names ``path.field``."""
    return st.tuples(st.sampled_from(paths), values).map(
        lambda pv: Edit(what, ((pv[0], {field: pv[1]}),), _key((*pv[0], field))),
    )


# --- bad values ------------------------------------------------------------------------------

_LETTERS = st.text(string.ascii_letters, max_size=8)
_POOLS: dict[str, st.SearchStrategy[object]] = {
    "str": st.text(max_size=6),
    "int": st.integers(-(10**6), 10**6),
    "float": st.floats().filter(lambda number: not number.is_integer()),  # inf and nan included
    "bool": st.booleans(),
    "null": st.none(),
    "list": st.lists(st.integers() | st.text(max_size=3), max_size=2),
    "map": st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=1, max_size=2),
    "date": st.dates(),
}


def _wrong(*allowed: str) -> st.SearchStrategy[object]:
    """A value of any YAML type but ``allowed`` (a ``float`` here always has a fraction)."""
    return st.one_of(*(pool for kind, pool in _POOLS.items() if kind not in allowed))


def _is_duration(text: str) -> bool:
    """What ``rotator.core.durations`` parses: digits and one of s, m, h, d, spaces around allowed."""
    return re.fullmatch(r"\d+[smhd]", text.strip()) is not None


_NOT_DURATION_TEXTS = [
    "10 parsecs", "-5m", "", " ", "1h30", "1h30m", "5", "m", "1.5h", "1e3s", "5 m", "5mm", "5M", "5w",
    "5y", "+5m", "5s ago", "P1D", "00:05:00", "ten minutes", "9" * 5000 + "d",
]  # fmt: skip
NOT_DURATIONS = st.one_of(
    st.sampled_from(_NOT_DURATION_TEXTS),
    st.from_regex(r"[+-]?[0-9]{1,4}(\.[0-9])?\s?[a-zA-Z]{0,6}", fullmatch=True),
    st.text(max_size=8),
).filter(lambda text: not _is_duration(text))
#: Well-formed, but beyond what a timedelta holds (999999999 days).
HUGE_DURATIONS = st.one_of(
    st.integers(10**9, 10**40).map(lambda n: f"{n}d"),
    st.integers(10**17, 10**40).map(lambda n: f"{n}{'smh'[n % 3]}"),
)
#: A bare number too (``grace: 60``): it would be read as seconds nobody meant.
DURATIONS = st.one_of(NOT_DURATIONS, HUGE_DURATIONS, _wrong("str"), st.integers(0, 10**6))
NULLABLE_DURATIONS = st.one_of(NOT_DURATIONS, HUGE_DURATIONS, _wrong("str", "null"), st.integers(0, 10**6))


def _days(low: int, high: int) -> st.SearchStrategy[object]:
    return st.integers(low, high).map(lambda n: f"{n}d")


def _counts(low: int, high: int | None = None, *, nullable: bool = False) -> st.SearchStrategy[object]:
    """Not an int from ``low`` to ``high``: out of range, a fraction, a word, a boolean, a list..."""
    out_of_range = st.integers(max_value=low - 1)
    if high is not None:
        out_of_range |= st.integers(min_value=high + 1)
    kinds = ("int", "str", "null") if nullable else ("int", "str")
    return st.one_of(out_of_range, _LETTERS, _wrong(*kinds))


_BOOL_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
BOOLEANS = st.one_of(
    st.integers().filter(lambda n: n not in {0, 1}),
    _LETTERS.filter(lambda word: word.lower() not in _BOOL_WORDS),
    _wrong("int", "str", "bool"),
)
_BAD_URLS = [
    "gitlab.example.com", "ftp://gitlab.example.com", "http://", "https:///api", "http://[::1",
    "http://gitlab:port", "http://127.0.0.1:99999", "https://git lab.example.com", "http://µ",
    "http://bücher.example", "http://:80", "http://user@", "http://a\tb", "HTTP://g", "",
]  # fmt: skip
URLS = st.one_of(
    _wrong("str"),
    st.sampled_from(_BAD_URLS),
    st.text(max_size=12).filter(lambda text: not text.startswith(("http://", "https://"))),
)
STATE_URLS = st.one_of(
    _wrong("str"),
    st.sampled_from(["", "sqlite:///", "sqlite://x.db", "sqlite:/x.db", "SQLITE:///x.db", "mysql://db/x"]),
    st.sampled_from(  # a password in the URL: refused, never echoed
        [
            "postgresql://rotator:pw@db/rotator",
            "postgres://rotator@db/rotator?password=pw",
            "postgresql://db:x/r",
        ]
    ),
    st.text(max_size=12).filter(lambda text: not text.startswith(("sqlite:///", "postgres"))),
)
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NAMES = st.one_of(
    _wrong("str"),
    st.sampled_from(["", "App-Deploy", "app_deploy", "app deploy", "-app", "app-", "app--deploy", "app\n"]),
    st.text(max_size=10).filter(lambda text: not _NAME.fullmatch(text)),
)
_PROJECT_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)+")
PROJECTS = st.one_of(
    _wrong("int", "str"),
    st.integers(max_value=0),
    st.sampled_from(["", "0", "acme", "/acme/app", "acme/app/", "acme//app", "acme/ app", "acme/app\n", "²"]),
    st.text(max_size=10).filter(lambda text: not (text.isdecimal() or _PROJECT_PATH.fullmatch(text))),
)
_BAD_UUIDS = [
    "", "nope", "3c90c3cc-0d44-4b50-8888-8dd25736052", "3c90c3cc-0d44-4b50-8888-8dd25736052ab",
    "3c90c3cc-0d44-4b50-8888-8dd25736052g", " 3c90c3cc-0d44-4b50-8888-8dd25736052a",
]  # fmt: skip
CONNECTION_IDS = st.one_of(
    _wrong("str"),
    st.sampled_from(_BAD_UUIDS),
    st.text(max_size=8),
)
ACCESS_LEVEL_VALUES = st.one_of(
    _wrong("int", "str"),
    st.integers().filter(lambda n: n not in ACCESS_LEVELS.values()),
    st.text(max_size=10).filter(lambda text: text not in ACCESS_LEVELS),
)
_NOT_API = sorted(TOKEN_SCOPES - {"api", "read_api"})
SCOPES = st.one_of(
    _wrong("list"),
    st.lists(st.sampled_from(_NOT_API), max_size=3),  # without api or read_api
    st.lists(st.text(max_size=8).filter(lambda s: s not in TOKEN_SCOPES), min_size=1, max_size=2).map(
        lambda unknown: ["api", *unknown],
    ),
    st.lists(_wrong("str"), min_size=1, max_size=2),
)
TOKEN_NAMES = st.one_of(_wrong("str", "null"), st.just(""), st.text(min_size=201, max_size=210))
LIFETIMES = st.one_of(
    DURATIONS,
    _days(0, 1),
    _days(366, 999_999_999),
    st.integers(1, 20_000).filter(lambda hours: hours % 24).map(lambda hours: f"{hours}h"),
)
#: ``gitlab.timeout``: at most a day.
TIMEOUTS = st.one_of(DURATIONS, _days(2, 999_999_999), st.integers(1441, 10**9).map(lambda m: f"{m}m"))
#: With the baseline's 30d lifetime and 10d rotate_before, rotations are 20d apart; grace must be less.
LONG_GRACES = st.one_of(_days(20, 999_999_999), st.integers(480, 10**6).map(lambda h: f"{h}h"))
#: rotate_every no longer than the baseline's 1h grace: refused as ``grace``.
SHORT_ROTATE_EVERY = st.sampled_from(["0s", "1s", "59m", "1h", "3600s"])
#: rotate_before no shorter than the 30d lifetime.
LONG_ROTATE_BEFORE = _days(30, 999_999_999)


# --- the families ----------------------------------------------------------------------------

_IN_TARGET = [("targets", i) for i in TARGETS]
_TARGET_LEVEL: list[Path_] = [("defaults",), *_IN_TARGET]  # where target fields may be written
_UNKNOWN_KEYS = st.one_of(
    st.sampled_from(["base_dir", "URL", "Name", "colour", "tokens", "grace ", "<<", "~", "yes"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Zl", "Zp")), min_size=1, max_size=12),
)


def _in_each(paths: Sequence[Path_], field: str) -> list[Path_]:
    return [(*path, field) for path in paths]


def _token_field(field: str, values: st.SearchStrategy[object]) -> st.SearchStrategy[Edit]:
    """A bad ``token.FIELD``: in ``defaults.token``, or in a target's own ``token:``."""
    return st.one_of(
        _edits(f"token.{field}", [("defaults", "token", field)], values),
        _wrapped_edits(f"token.{field}", [(*path, "token") for path in _IN_TARGET], field, values),
    )


def _unknown_key(section: Path_, known: set[str]) -> st.SearchStrategy[Edit]:
    keys = _UNKNOWN_KEYS.filter(lambda key: key not in known)
    return st.tuples(keys, st.integers() | st.text(max_size=4)).map(
        lambda kv: Edit(
            "unknown key", (((*section, kv[0]), kv[1]),), _key((*section, kv[0]), as_written=True)
        ),
    )


def _unknown_token_key() -> st.SearchStrategy[Edit]:
    keys = _UNKNOWN_KEYS.filter(lambda key: key not in KNOWN["token"])
    paths = [(*path, "token") for path in _IN_TARGET]
    return st.tuples(st.sampled_from(paths), keys).map(
        lambda pk: Edit("unknown token key", ((pk[0], {pk[1]: 1}),), _key((*pk[0], pk[1]))),
    )


def _duplicate() -> st.SearchStrategy[Edit]:
    """A later target repeating an earlier one's name, connection, adopted token or token name."""

    def build(field: str, source: int, later: int, variant: bool) -> Edit:
        changes: list[tuple[Path_, object]] = []
        if later == len(TARGETS):  # a third target, otherwise unique, then made to repeat
            third = {
                "name": "third-deploy",
                "project": "acme/third",
                "connection_id": "0b5d2a8e-6c1f-4e3a-9d7b-1f2e3d4c5b6a",
                "adopt_token_id": 99,
            }
            changes.append((("targets", later), third))
        if field == "token.name":  # same project, same base name for the new tokens
            changes.append((("targets", later, "project"), _CopyOf(("targets", source, "project"))))
            changes.append((("targets", later, "token"), {"name": "shared"}))
            changes.append((("targets", source, "token"), {"name": "shared"}))
        elif field == "connection_id" and variant:  # the same UUID, spelled in capitals
            changes.append((("targets", later, field), CONNECTIONS[source].upper()))
        else:
            if field == "adopt_token_id" and variant and source > 0:  # an earlier target adopts nothing
                changes.append((("targets", 0, field), DELETE))
            changes.append((("targets", later, field), _CopyOf(("targets", source, field))))
        return Edit(f"duplicate {field}", tuple(changes), _key(("targets", later, *field.split("."))))

    pairs = st.sampled_from([(0, 1), (0, 2), (1, 2)])
    fields = st.sampled_from(["name", "connection_id", "adopt_token_id", "token.name"])
    return st.tuples(fields, pairs, st.booleans()).map(lambda f: build(f[0], f[1][0], f[1][1], f[2]))


def _missing() -> st.SearchStrategy[Edit]:
    paths: list[Path_] = [
        ("gitlab",), ("gitlab", "url"), ("targets",), ("defaults", "token"), ("defaults", "token", "scopes"),
        *(("targets", i, field) for i in TARGETS for field in ("name", "project", "connection_id")),
    ]  # fmt: skip
    return st.sampled_from(paths).map(lambda path: Edit("missing", ((path, DELETE),), _missing_key(path)))


def _missing_key(path: Path_) -> str:
    """A missing key is named; a target without its owner key (one of three kinds) names the target."""
    if len(path) == 3 and path[0] == "targets" and path[2] == "project":
        return _key(path[:2]) + r"(?:\.project)?"
    return _key(path)


CONFIG_EDITS: st.SearchStrategy[Edit] = st.one_of(
    # wrong types and bad values, section by section
    _edits("section", [("gitlab",), ("infisical",), ("state",)], _wrong("map")),
    _edits("defaults", [("defaults",)], _wrong("map", "null")),
    _edits(
        "targets",
        [("targets",)],
        st.one_of(_wrong("list"), st.just([]), st.lists(_wrong("map"), min_size=1, max_size=2)),
    ),
    _edits("target", _IN_TARGET, _wrong("map")),
    _edits("token", _in_each(_TARGET_LEVEL, "token"), _wrong("map")),
    _edits("url", [("gitlab", "url"), ("infisical", "url")], URLS),
    _edits("timeout", [("gitlab", "timeout"), ("infisical", "timeout")], TIMEOUTS),
    _edits("rate", [("gitlab", "requests_per_minute")], _counts(1)),
    _edits("rate", [("infisical", "reads_per_minute"), ("infisical", "writes_per_minute")], _counts(1)),
    _edits("state.url", [("state", "url")], STATE_URLS),
    _edits("concurrency", [("max_concurrent_rotations",)], _counts(1, 64)),
    _edits("name", _in_each(_IN_TARGET, "name"), NAMES),
    _edits("project", _in_each(_IN_TARGET, "project"), PROJECTS),
    _edits("connection_id", _in_each(_IN_TARGET, "connection_id"), CONNECTION_IDS),
    _edits("adopt_token_id", _in_each(_IN_TARGET, "adopt_token_id"), _counts(1, nullable=True)),
    _edits("hold_revoke_if_used", _in_each(_TARGET_LEVEL, "hold_revoke_if_used"), BOOLEANS),
    _token_field("name", TOKEN_NAMES),
    _token_field("scopes", SCOPES),
    _token_field("access_level", ACCESS_LEVEL_VALUES),
    # durations: malformed, too big to hold, or breaking a rule between fields
    _edits("grace", _in_each(_TARGET_LEVEL, "grace"), st.one_of(DURATIONS, LONG_GRACES)),
    _edits("rotate_every", _in_each(_TARGET_LEVEL, "rotate_every"), NULLABLE_DURATIONS),
    _edits("rotate_before", _in_each(_TARGET_LEVEL, "rotate_before"), NULLABLE_DURATIONS),
    _token_field("lifetime", LIFETIMES),
    _edits("rotate_before >= lifetime", _in_each(_TARGET_LEVEL, "rotate_before"), LONG_ROTATE_BEFORE),
    st.tuples(st.sampled_from(_TARGET_LEVEL), SHORT_ROTATE_EVERY).map(
        lambda pv: Edit(  # the rule is on grace, so grace is the key named
            "rotate_every <= grace", (((*pv[0], "rotate_every"), pv[1]),), _key((*pv[0], "grace"))
        ),
    ),
    # unknown keys at every level, and per-target fields in defaults
    _unknown_key((), KNOWN["top"]),
    *(_unknown_key((section,), KNOWN[section]) for section in ("gitlab", "infisical", "state")),
    _unknown_key(("defaults",), KNOWN["target"]),
    _unknown_key(("defaults", "token"), KNOWN["token"]),
    *(_unknown_key(path, KNOWN["target"]) for path in _IN_TARGET),
    _unknown_token_key(),
    _edits("per-target field in defaults", [("defaults", field) for field in PER_TARGET], _POOLS["int"]),
    _duplicate(),
    _missing(),
)


@settings(GENERATED, max_examples=600)
@given(edits=st.lists(CONFIG_EDITS, min_size=1, max_size=3))
def test_broken_configs_exit_2_naming_the_key(baseline: Baseline, edits: list[Edit]) -> None:
    """One to three breaking edits to a valid config: exit 2, naming a key one of them broke."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    document, applied = baseline.config, list[Edit]()
    for edit in edits:
        edited = edit.apply(document)
        if edited is not None:
            document, applied = edited, [*applied, edit]
    assert applied, "the first edit always applies to the baseline"
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        env = _secrets(baseline, "client", frozenset(), folder)
        outcome = _in_process(["--config", str(_write(folder, document)), "plan"], env)
    _assert_refused(outcome, [edit.key for edit in applied], applied)


@settings(max_examples=60, deadline=None)
@given(edit=_duplicate())
def test_duplicates_name_the_later_target(baseline: Baseline, edit: Edit) -> None:
    """Each kind of repeat between two of three targets: exit 2 naming the later one's key."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    document = edit.apply(baseline.config)
    assert document is not None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        env = _secrets(baseline, "client", frozenset(), folder)
        outcome = _in_process(["--config", str(_write(folder, document)), "plan"], env)
    _assert_refused(outcome, [edit.key], edit)


# --- whole files -----------------------------------------------------------------------------

INVALID_UTF8 = st.sampled_from(
    [b"\xff", b"\xfe\xff", b"\x80", b"\xc3\x28", b"\xe9", b"\xed\xa0\x80", b"\xf8\x88"]
)
#: Each breaks a document wherever it stands: before it, after it, or alone.
_BROKEN_YAML = [
    "gitlab: [unclosed", "a: b: c", "\tgitlab:", "*undefined", "key: !!python/object:os.system x",
    "? [a]\n: 1", "key: !!int x", "key: !!int", "key: !!bool", "key: !!timestamp x", "key: 2024-13-45",
    "key: !!float x", "key: " + "1" * 5000, "[" * 2000 + "]" * 2000, "---\na: 1\n---\nb: 2",
    "key: '\x00'", "key: \x07", "key: {a: 1", 'key: "unterminated',
]  # fmt: skip
NOT_MAPPINGS = st.sampled_from(["", "null", "~", "- a\n- b", "42", "just text", "true", "[gitlab]"])


@dataclass(frozen=True)
class FileCase:
    """A config file that is not a readable YAML mapping, and how rotator is pointed at it."""

    what: str
    content: bytes | None  # None: the path is a directory; b"" with missing: no file at all
    key: str
    missing: bool = False
    via_variable: bool = False  # ROTATOR_CONFIG instead of --config


@st.composite
def _file_cases(draw: st.DrawFn) -> FileCase:
    valid = yaml.safe_dump(draw(st.sampled_from([{"gitlab": {"url": "http://g"}}, {"targets": [1]}])))
    kind = draw(st.sampled_from(["not utf-8", "utf-16", "latin-1", "broken yaml", "mapping?", "dir", "gone"]))
    content: bytes | None = b""
    key = "--config"
    if kind == "not utf-8":
        at = draw(st.integers(0, len(valid)))
        content = valid[:at].encode() + draw(INVALID_UTF8) + valid[at:].encode()
    elif kind == "utf-16":
        content = valid.encode("utf-16")
    elif kind == "latin-1":
        content = (valid + "# café\n").encode("latin-1")
    elif kind == "broken yaml":
        where, snippet = (
            draw(st.sampled_from(["before", "after", "alone"])),
            draw(st.sampled_from(_BROKEN_YAML)),
        )
        kind = f"{kind} {where}"
        content = {"before": f"{snippet}\n{valid}", "after": f"{valid}{snippet}\n", "alone": snippet}[
            where
        ].encode()
    elif kind == "mapping?":
        content, key = draw(NOT_MAPPINGS).encode(), "(file)"
    elif kind == "dir":
        content = None
    return FileCase(kind, content, re.escape(key), missing=kind == "gone", via_variable=draw(st.booleans()))


@GENERATED
@given(case=_file_cases())
def test_unreadable_config_files_exit_2(baseline: Baseline, case: FileCase) -> None:
    """Non-UTF-8 bytes, broken YAML, a non-mapping, a directory or no file: exit 2 on --config."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = folder / "rotator.yaml"
        if case.content is None:
            path.mkdir()
        elif not case.missing:
            path.write_bytes(case.content)
        env = _secrets(baseline, "client", frozenset(), folder)
        if case.via_variable:
            outcome = _in_process(["plan"], {**env, "ROTATOR_CONFIG": str(path)})
        else:
            outcome = _in_process(["--config", str(path), "plan"], env)
    _assert_refused(outcome, [case.key], case)


def test_no_config_at_all_exits_2(baseline: Baseline) -> None:
    """Neither --config nor ROTATOR_CONFIG: exit 2 on --config."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    with tempfile.TemporaryDirectory() as scratch:
        env = _secrets(baseline, "client", frozenset(), Path(scratch))
        _assert_refused(_in_process(["plan"], env), [re.escape("--config")], "no config")


# --- the environment -------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvCase:
    """A valid environment (``mode``, ``as_files``) broken by one change, and the variable to name."""

    what: str
    mode: Mode
    as_files: frozenset[str]
    key: str
    unset: tuple[str, ...] = ()
    put: tuple[tuple[str, str], ...] = ()  # "{dir}": the scratch folder; "{good}": the real value
    files: tuple[tuple[str, bytes | None], ...] = ()  # in the scratch folder; None makes a directory


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


BLANKS = st.text(" \t\r\n\x0b\x0c\u00a0\u2003", max_size=3)
BAD_FILE_BYTES = st.one_of(
    st.sampled_from([b"", b"\n", b" \n", b"\r\n", b"\xff\xfe", b"glpat-\xe9\n", b"\xed\xa0\x80"]),
    st.binary(min_size=1, max_size=12).filter(lambda data: not _utf8(data)),
)
#: Bytes that are not UTF-8 as Python hands them over from the environment: with lone surrogates.
UNDECODABLE = (
    st.binary(min_size=1, max_size=4)
    .filter(lambda data: not (_utf8(data) or b"\0" in data or b"\n" in data))  # no NUL: environ refuses it
    .map(lambda data: data.decode("utf-8", "surrogateescape"))
)


def _bad_file(draw: st.DrawFn, name: str) -> tuple[str, tuple[tuple[str, bytes | None], ...], str]:
    """NAME_FILE pointing at no file, a directory, a path under a file, or bad content."""
    problem = draw(st.sampled_from(["missing", "directory", "content", "under a file", "undecodable path"]))
    if problem == "directory":
        return problem, (("secret", None),), "{dir}/secret"
    if problem == "content":
        return problem, (("secret", draw(BAD_FILE_BYTES)),), "{dir}/secret"
    if problem == "under a file":
        return problem, (("secret", b"x"),), "{dir}/secret/inside"
    if problem == "undecodable path":
        return problem, (), "{dir}/" + draw(UNDECODABLE)
    return problem, (), f"{{dir}}/no-{name.lower()}"


@st.composite
def _env_cases(draw: st.DrawFn) -> EnvCase:
    mode: Mode = draw(st.sampled_from(["client", "token"]))
    as_files = frozenset(draw(st.sets(st.sampled_from(SECRET_NAMES))))
    present = (GITLAB, INFISICAL) if mode == "token" else (GITLAB, CLIENT_ID, CLIENT_SECRET)
    name = draw(st.sampled_from(SECRET_NAMES))
    families = ["unset", "mixed", "blank", "both", "bad file", "not utf-8", "clock"]
    what = draw(st.sampled_from([*families, "unset both"] if mode == "client" else families))
    key = name
    unset: tuple[str, ...] = (name,)
    put: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, bytes | None], ...] = ()
    if what == "unset":
        key = draw(st.sampled_from(present))
        unset = (key,)
    elif what == "unset both":  # Universal Auth without either half: neither mode is given
        key, unset = INFISICAL, (CLIENT_ID, CLIENT_SECRET)
    elif what == "mixed":  # an access token and Universal Auth at once
        both = st.sets(st.sampled_from([CLIENT_ID, CLIENT_SECRET]), min_size=1)
        extra = [INFISICAL] if mode == "client" else sorted(draw(both))
        key, unset, put = INFISICAL, (), tuple((n, "{good}") for n in extra)
    elif what == "blank":
        put = ((name, draw(BLANKS)),)
    elif what == "both":
        put, files = ((name, "{good}"), (f"{name}_FILE", "{dir}/both.txt")), (("both.txt", b"x\n"),)
    elif what == "not utf-8":  # Python hands undecodable bytes over as lone surrogates
        put = ((name, draw(st.text(string.ascii_letters, max_size=4)) + draw(UNDECODABLE)),)
    elif what == "clock":  # the test hook's offset, which may start with a minus; its warning echoes it
        offsets = NOT_DURATIONS.filter(lambda text: text and "\n" not in text and "\0" not in text)
        offset = draw(offsets.filter(lambda text: not _is_duration(text.removeprefix("-"))))
        key, unset, put = CLOCK_OFFSET, (), ((CLOCK_OFFSET, offset),)
    else:
        problem, files, path = _bad_file(draw, name)
        what, key, put = f"bad file: {problem}", f"{name}_FILE", ((f"{name}_FILE", path),)
    return EnvCase(what, mode, as_files, re.escape(key), unset, put, files)


def _environment(base: Baseline, case: EnvCase, folder: Path) -> dict[str, str]:
    env = _secrets(base, case.mode, case.as_files, folder)
    for name in case.unset:
        env.pop(name, None)
        env.pop(f"{name}_FILE", None)
    for file_name, content in case.files:
        if content is None:
            (folder / file_name).mkdir()
        else:
            (folder / file_name).write_bytes(content)
    for name, value in case.put:
        env[name] = value.replace("{dir}", str(folder)).replace("{good}", base.seed_values.get(name, "good"))
    return env


@GENERATED
@given(case=_env_cases())
def test_broken_environments_exit_2_naming_the_variable(baseline: Baseline, case: EnvCase) -> None:
    """A missing, doubled, blank, non-UTF-8 or unreadable secret: exit 2 naming the variable."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        env = _environment(baseline, case, folder)
        outcome = _in_process(["--config", str(_write(folder, baseline.config)), "plan"], env)
    _assert_refused(outcome, [case.key], case)


# --- the real process ------------------------------------------------------------------------


def test_the_real_process_accepts_the_baseline(servers: Fakes, tmp_path: Path) -> None:
    """``python -m rotator plan`` on the harness's config exits 0: the subprocess cases are fair."""
    ledger.count("cases")
    ledger.count("runs")
    result = Harness(servers, tmp_path).run("plan")
    assert (result.code, "Traceback" in result.stderr) == (0, False), result


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("non-UTF-8 config", "--config"),
        ("unknown key", "targets[1].colour"),
        ("missing secret", GITLAB),
        ("non-UTF-8 secret", CLIENT_SECRET),
    ],
)
def test_the_real_process_exits_2_without_a_traceback(
    baseline: Baseline, tmp_path: Path, case: str, key: str
) -> None:
    """The most common breakages, as a real process: exit 2, one line naming the key, no traceback."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    document = copy.deepcopy(baseline.config)
    env = _secrets(baseline, "client", frozenset(), tmp_path)
    config = tmp_path / "rotator.yaml"
    if case == "unknown key":
        document["targets"][1]["colour"] = "blue"
    config.write_text(yaml.safe_dump(document))
    if case == "non-UTF-8 config":
        config.write_bytes(config.read_bytes().replace(b"targets:", b"# caf\xe9\ntargets:"))
    elif case == "missing secret":
        del env[GITLAB]
    elif case == "non-UTF-8 secret":
        env[CLIENT_SECRET] += "\udcff"  # sent to the child as the raw byte 0xFF
    _assert_refused(_subprocess(config, env), [re.escape(key)], case)


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("targets", 1, "grace"), "targets[1].grace"),
        (("defaults", "rotate_before"), "targets[0].rotate_before"),
        (("daemon", "check_interval"), "daemon.check_interval"),
    ],
)
def test_the_real_process_refuses_a_bare_number_as_a_duration(
    baseline: Baseline, tmp_path: Path, where: Path_, key: str
) -> None:
    """``grace: 60`` and the like, as a real process: exit 2, one line naming the key, asking for a unit."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    document = copy.deepcopy(baseline.config)
    document.setdefault("daemon", {})
    assert _put(document, where, 3)
    outcome = _subprocess(_write(tmp_path, document), _secrets(baseline, "client", frozenset(), tmp_path))
    _assert_refused(outcome, [re.escape(key)], where)
    assert "write a unit, e.g. 7d" in outcome.stderr


def test_the_real_process_refuses_a_key_written_twice(baseline: Baseline, tmp_path: Path) -> None:
    """A second ``connection_id`` line in a target: exit 2 naming the key's path and both lines."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    lines = yaml.safe_dump(baseline.config).splitlines(keepends=True)
    first = next(n for n, line in enumerate(lines) if line.startswith("  connection_id: "))
    lines.insert(first + 1, f"  connection_id: {CONNECTIONS[1]}\n")  # the second target's: a silent swap
    config = tmp_path / "rotator.yaml"
    config.write_text("".join(lines))
    outcome = _subprocess(config, _secrets(baseline, "client", frozenset(), tmp_path))
    _assert_refused(outcome, [re.escape("targets[0].connection_id")], "connection_id twice")
    assert f"on lines {first + 1} and {first + 2}" in outcome.stderr


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "over 1 MiB"])
def test_the_real_process_reads_only_a_small_regular_config(
    baseline: Baseline, tmp_path: Path, kind: str
) -> None:
    """``--config`` at /dev/zero, a FIFO, a directory or a huge file: exit 2 on --config, no hang."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    config = {"/dev/zero": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "rotator.yaml")
    if kind == "fifo":
        os.mkfifo(config)  # nobody writes: a blocking open would wait forever
    elif kind == "over 1 MiB":
        config.write_text(yaml.safe_dump(baseline.config) + "# padding\n" * (110 * 1024))
    outcome = _subprocess(config, _secrets(baseline, "client", frozenset(), tmp_path), timeout=30)
    _assert_refused(outcome, [re.escape("--config")], kind)
    assert ("1 MiB" if kind == "over 1 MiB" else "not a regular file") in outcome.stderr


def test_the_real_process_refuses_a_secret_file_at_dev_zero(baseline: Baseline, tmp_path: Path) -> None:
    """``ROTATOR_GITLAB_TOKEN_FILE=/dev/zero``: exit 2 naming the variable, not a MemoryError."""
    ledger.count("cases")
    ledger.count("bad_inputs")
    env = _secrets(baseline, "client", frozenset(), tmp_path)
    del env[GITLAB]
    env[f"{GITLAB}_FILE"] = "/dev/zero"
    outcome = _subprocess(_write(tmp_path, baseline.config), env, timeout=30)
    _assert_refused(outcome, [re.escape(f"{GITLAB}_FILE")], "/dev/zero")
    assert "/dev/zero: is a character device, not a regular file" in outcome.stderr
