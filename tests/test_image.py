"""The container image, read from the Dockerfile and .dockerignore: its shape, its user, no secrets."""

import json
import re
import shlex
import tomllib

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from rotator.doors import healthcheck
from rotator.doors.cli import build_parser
from rotator.doors.config import DaemonSettings, split_listen


ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = "/var/lib/rotator"
UID = GID = 10001
#: A variable's name that says it holds a credential; none may be baked into a layer.
SECRET_NAME = re.compile(r"token|secret|passw(or)?d|key|credential", re.IGNORECASE)
#: GitLab's token prefixes (personal, project, deploy, runner, feed, ...).
GITLAB_TOKEN = re.compile(r"\bgl(pat|ptt|dt|rt|ft|soat|cbt|imt|agent)-")
OCI_LABELS = ("title", "description", "source", "licenses", "version")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, its continuation lines joined."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its FROM line's image and name, and the instructions after it."""

    image: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, name: str) -> list[str]:
        """The values of every instruction called ``name``, in order."""
        return [i.value for i in self.instructions if i.name == name]

    def last(self, name: str) -> str:
        """The value of the last instruction called ``name`` (the one that takes effect)."""
        values = self.all(name)
        assert values, f"no {name} in the stage FROM {self.image}"
        return values[-1]

    def index(self, name: str, predicate: str = "") -> int:
        """The position of the first ``name`` instruction whose value contains ``predicate``."""
        return next(n for n, i in enumerate(self.instructions) if i.name == name and predicate in i.value)


@cache
def _instructions() -> tuple[Instruction, ...]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"), env_replace=False)
    items: list[dict[str, Any]] = parser.structure
    return tuple(
        Instruction(str(i["instruction"]), str(i["value"])) for i in items if i["instruction"] != "COMMENT"
    )


def _global_args() -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults: what a FROM line may refer to."""
    found: dict[str, str] = {}
    for instruction in _instructions():
        if instruction.name == "FROM":
            break
        if instruction.name == "ARG":
            found |= _pairs(instruction.value)
    return found


@cache
def _from_lines() -> tuple[str, ...]:
    """Each FROM's image as written (``${BASE_IMAGE}``, say), before the defaults are put in."""
    return tuple(i.value.split()[0] for i in _instructions() if i.name == "FROM")


@cache
def _stages() -> tuple[Stage, ...]:
    stages: list[Stage] = []
    defaults = _global_args()
    for instruction in _instructions():
        if instruction.name == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]  # drop --platform
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m[1] or m[2]], words[0])
            stages.append(Stage(image, name, ()))
        elif stages:  # an ARG before the first FROM belongs to no stage
            last = stages[-1]
            stages[-1] = Stage(last.image, last.name, (*last.instructions, instruction))
    return tuple(stages)


def _final() -> Stage:
    return _stages()[-1]


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not exec form (a JSON array): {value}"
    assert all(isinstance(word, str) for word in parsed)
    return [str(word) for word in parsed]


def _pairs(value: str) -> dict[str, str]:
    """``KEY=value KEY2="v 2"`` (ENV, LABEL, ARG) as a dict; the legacy ``ENV KEY value`` too."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.partition("=")[::2] for word in words)


def _copy(value: str) -> tuple[dict[str, str], list[str]]:
    """A COPY's flags (``--from=build``) and its sources (the destination dropped)."""
    words = shlex.split(value)
    flags = dict(w.removeprefix("--").partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


def _context_sources() -> list[str]:
    """What the Dockerfile COPYs from the build context (not from another stage), in any stage."""
    sources: list[str] = []
    for instruction in _instructions():
        if instruction.name == "COPY":
            flags, paths = _copy(instruction.value)
            if "from" not in flags:
                sources += paths
    return sources


@cache
def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` stay within one path segment, ``**`` spans any."""
    assert "[" not in pattern, "character classes: extend this matcher before using them"
    regex, at = "", 0
    while at < len(pattern):
        if pattern.startswith("**/", at):
            regex, at = regex + "(?:.*/)?", at + 3
        elif pattern.startswith("**", at):
            regex, at = regex + ".*", at + 2
        else:
            regex += {"*": "[^/]*", "?": "[^/]"}.get(pattern[at], re.escape(pattern[at]))
            at += 1
    return re.compile(regex)


@cache
def _dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            pattern = line.removeprefix("!").strip().strip("/")
            rules.append((line.startswith("!"), _dockerignore_regex(pattern)))
    return tuple(rules)


def _ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context.

    The last matching rule wins, and a rule matching a parent folder matches everything in it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, rule in _dockerignore():
        if any(rule.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


# The stages.


def test_builds_in_two_stages_on_one_pinned_python_3_11_slim_image() -> None:
    """At least two stages, every base the same python:3.11.N-slim tag (never latest)."""
    stages = _stages()
    assert len(stages) >= 2
    names = {stage.name for stage in stages}
    bases = {stage.image for stage in stages if stage.image not in names}
    assert bases == {_final().image}, f"one base image for every stage, got {sorted(bases)}"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", _final().image)


def test_the_base_image_is_one_build_argument_for_every_stage() -> None:
    """ARG BASE_IMAGE (the pinned slim image) comes before the first FROM; every base stage is FROM it."""
    assert _global_args() == {"BASE_IMAGE": _final().image}
    names = {stage.name for stage in _stages()}
    written = [image for image in _from_lines() if image not in names]
    assert written
    assert set(written) <= {"${BASE_IMAGE}", "$BASE_IMAGE"}


def test_base_image_satisfies_requires_python() -> None:
    """The image's Python is one pyproject's requires-python accepts."""
    requires = _pyproject()["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires)
    assert floor is not None, f"extend this test for requires-python = {requires!r}"
    found = re.match(r"python:(\d+)\.(\d+)", _final().image)
    assert found is not None
    assert (int(found[1]), int(found[2])) >= (int(floor[1]), int(floor[2]))


def test_first_stage_builds_the_wheel_and_the_final_stage_installs_it() -> None:
    """An earlier stage runs pip wheel; the final stage COPYs --from it and pip installs the .whl."""
    builders = [s for s in _stages()[:-1] if any("pip wheel" in run for run in s.all("RUN"))]
    assert builders, "no earlier stage runs pip wheel"
    builder = builders[0]
    assert builder.name is not None, "the wheel's stage is named (FROM ... AS name)"
    wheel_run = next(run for run in builder.all("RUN") if "pip wheel" in run)
    assert "--no-deps" in wheel_run
    copies = [_copy(value) for value in _final().all("COPY")]
    from_builder = [paths for flags, paths in copies if flags.get("from") == builder.name]
    assert from_builder, f"the final stage copies nothing --from={builder.name}"
    installs = [run for run in _final().all("RUN") if "pip install" in run]
    assert any(".whl" in run and "--no-cache-dir" in run for run in installs), installs


def test_the_dependencies_come_from_the_lock_by_hash_and_the_wheel_adds_none() -> None:
    """requirements.lock is installed with --require-hashes, then the wheel --no-deps, then pip check."""
    final = _final()
    lock = next(n for n, run in enumerate(final.instructions) if "--require-hashes" in run.value)
    assert re.search(r"-r \S*requirements\.lock\b", final.instructions[lock].value)
    wheel = final.index("RUN", ".whl")
    assert lock < wheel, "the locked dependencies first: their layer stays cached while the code changes"
    assert "--no-deps" in final.instructions[wheel].value
    assert "pip check" in final.instructions[wheel].value


def test_the_wheel_is_stamped_with_source_date_epoch() -> None:
    """The wheel's stage declares ARG SOURCE_DATE_EPOCH before it runs pip wheel (a reproducible wheel)."""
    builder = next(s for s in _stages()[:-1] if any("pip wheel" in run for run in s.all("RUN")))
    declared = builder.index("ARG", "SOURCE_DATE_EPOCH")
    assert declared < builder.index("RUN", "pip wheel")


def test_the_build_stops_when_version_is_not_the_packages() -> None:
    """ARG VERSION has no default; a RUN after it checks ``rotator $VERSION`` against ``--version``."""
    final = _final()
    declared = final.index("ARG", "VERSION")
    assert _pairs(final.instructions[declared].value) == {"VERSION": ""}
    check = final.index("RUN", "rotator --version")
    assert declared < check
    assert re.search(
        r'"rotator \$\{?VERSION\}?" = "\$\(rotator --version\)"', final.instructions[check].value
    )


# How it runs.


def test_runs_as_the_fixed_numeric_non_root_user() -> None:
    """The final USER is 10001:10001, numeric (runAsNonRoot can check it), created with those ids."""
    assert _final().last("USER") == f"{UID}:{GID}"
    runs = " ".join(_final().all("RUN"))
    assert re.search(rf"groupadd\b[^&;]*--gid {GID}\b", runs)
    assert re.search(rf"useradd\b[^&;]*--uid {UID}\b", runs)


def test_entrypoint_is_the_console_script_and_cmd_the_daemon() -> None:
    """ENTRYPOINT ["rotator"] (pyproject's console script), CMD ["daemon"] (a real command), exec form."""
    assert _exec_form(_final().last("ENTRYPOINT")) == ["rotator"]
    assert _exec_form(_final().last("CMD")) == ["daemon"]
    assert "rotator" in _pyproject()["project"]["scripts"]
    assert build_parser().parse_args(["daemon"]).command == "daemon"


def test_state_lives_on_a_volume_the_user_owns() -> None:
    """WORKDIR and VOLUME are the state folder, created for 10001 before the VOLUME freezes it."""
    final = _final()
    assert final.last("WORKDIR") == STATE_DIR
    assert STATE_DIR in _exec_form(final.last("VOLUME"))
    created = next(
        n
        for n, i in enumerate(final.instructions)
        if i.name == "RUN" and STATE_DIR in i.value and f"-o {UID}" in i.value
    )
    assert created < final.index("VOLUME"), "changes after VOLUME to its folder are discarded"


def test_runtime_environment_suits_a_read_only_root_filesystem() -> None:
    """No bytecode writes, unbuffered logs, TMPDIR=/tmp (an emptyDir), the venv first on PATH."""
    env: dict[str, str] = {}
    for value in _final().all("ENV"):
        env |= _pairs(value)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == "/tmp"  # noqa: S108 - the path compared, not used: an emptyDir in Kubernetes
    assert env["PATH"].startswith("/opt/rotator/bin:")


def test_exposes_the_daemons_default_port_and_probes_it_where_daemon_listen_says() -> None:
    """EXPOSE is daemon.listen's default port; HEALTHCHECK is `rotator healthcheck`, which reads it."""
    _, port = split_listen(DaemonSettings().listen)
    assert _final().last("EXPOSE").split() == [port]
    options, _, command = _final().last("HEALTHCHECK").partition("CMD")
    assert _exec_form(command.strip()) == ["rotator", "healthcheck"]
    assert build_parser().parse_args(["healthcheck"]).command == "healthcheck"
    env: dict[str, str] = {}
    for value in _final().all("ENV"):
        env |= _pairs(value)
    assert env["ROTATOR_CONFIG"]  # the config it reads, with no --config on the command line
    # Docker kills a check that outlives --timeout: the probe's own timeout must end first.
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout is not None
    assert int(timeout.group(1)) > healthcheck.TIMEOUT


def test_oci_labels_name_the_project() -> None:
    """The OCI labels are set; title, description and licence agree with pyproject; version is ARG VERSION."""
    labels: dict[str, str] = {}
    for value in _final().all("LABEL"):
        labels |= _pairs(value)
    prefix = "org.opencontainers.image."
    assert {prefix + name for name in OCI_LABELS} <= labels.keys()
    project = _pyproject()["project"]
    assert labels[prefix + "title"] == project["name"]
    assert labels[prefix + "description"] == project["description"]
    assert labels[prefix + "licenses"] == project["license"]["text"] == "Apache-2.0"
    assert labels[prefix + "version"] in {"$VERSION", "${VERSION}"}
    declared = [name for value in _final().all("ARG") for name in _pairs(value)]
    assert "VERSION" in declared, "an ARG is scoped to its stage: VERSION must be declared in the final one"


# No secret in any layer.


def test_no_env_or_arg_is_named_like_a_secret() -> None:
    """No ENV or ARG, in any stage, is called *TOKEN*, *SECRET*, *PASSWORD*, *KEY* or *CREDENTIAL*."""
    names = [name for i in _instructions() if i.name in {"ENV", "ARG"} for name in _pairs(i.value)]
    assert names
    assert [name for name in names if SECRET_NAME.search(name)] == []


def test_no_secret_can_be_copied_in() -> None:
    """Only pyproject.toml, README.md, requirements.lock and rotator/ come in; no ADD; no token."""
    assert sorted(_context_sources()) == ["README.md", "pyproject.toml", "requirements.lock", "rotator/"]
    assert not any(i.name == "ADD" for i in _instructions())
    assert not GITLAB_TOKEN.search((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_the_build_copies_what_setuptools_reads() -> None:
    """pyproject.toml, its readme (and licence file, if any) and the package are all COPYed."""
    project = _pyproject()["project"]
    needed = {"pyproject.toml", project["readme"], "rotator/"}
    if "file" in project.get("license", {}):
        needed.add(project["license"]["file"])
    assert needed <= set(_context_sources())


# .dockerignore.


@pytest.mark.parametrize(
    "path",
    [
        ".git",
        ".git/config",
        ".venv/bin/python",
        "build/lib/rotator/doors/cli.py",
        "dist/rotator-0.1.0.tar.gz",
        "rotator.egg-info/PKG-INFO",
        "rotator/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/cache.db",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/0",
        "rotator-state.db",
        "rotator-state.db-wal",
        "rotator-state.db-shm",
        "rotator/rotator-state.db",
        ".env",
        ".env.local",
        "rotator/.env",
        "rotator.yaml",
        "config/example.yaml",
        "tests/test_cli.py",
        "bench/fakes.py",
        "docs/reliability.md",
        "deploy/kubernetes/deployment.yaml",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    """VCS data, venvs, build output, caches, state databases, .env files, tests and docs stay out."""
    assert _ignored(path)


def test_dockerignore_lets_in_everything_the_build_copies() -> None:
    """Every file under what the Dockerfile COPYs from the context reaches the build."""
    files: list[str] = []
    for source in _context_sources():
        path = ROOT / source
        assert path.exists(), source
        found = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files += [p.relative_to(ROOT).as_posix() for p in found if "__pycache__" not in p.parts]
    assert "rotator/doors/cli.py" in files
    assert [file for file in files if _ignored(file)] == []


# The configuration the image is run with.


def _scalars(node: object, key: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _scalars(v, str(k))]
    if isinstance(node, list):
        return [pair for item in node for pair in _scalars(item, key)]
    return [(key, node)]


def test_example_config_holds_no_secret() -> None:
    """config/example.yaml has no GitLab token and no string under a secret-sounding key."""
    text = (ROOT / "config" / "example.yaml").read_text(encoding="utf-8")
    assert not GITLAB_TOKEN.search(text)
    secrets = [
        (k, v) for k, v in _scalars(yaml.safe_load(text)) if isinstance(v, str) and SECRET_NAME.search(k)
    ]
    assert secrets == []


# How the image is built: the documented command is the one CI runs.


def _build_command(text: str, tool: str) -> str:
    """The one line in ``text`` that starts with ``tool`` (``buildah bud``), up to its context ``.``."""
    (line,) = [
        line.strip() for line in text.splitlines() if line.strip().startswith(f"{tool} ") and " -t " in line
    ]
    return line[: line.index(' -t "rotator:$VERSION" .') + len(' -t "rotator:$VERSION" .')]


def test_the_readme_and_the_guides_buildah_command_is_what_ci_runs() -> None:
    """README, the Kubernetes guide and .ci/image hold the same buildah bud line, word for word."""
    ci = _build_command((ROOT / ".ci" / "image").read_text(encoding="utf-8"), "buildah bud")
    assert "--format docker" in ci  # without it buildah writes an OCI image, which drops the HEALTHCHECK
    assert '--build-arg VERSION="$VERSION"' in ci
    assert '--build-arg BASE_IMAGE="$BASE_IMAGE"' in ci
    assert "--build-arg SOURCE_DATE_EPOCH=" in ci
    for doc in ("README.md", "deploy/kubernetes/README.md"):
        assert _build_command((ROOT / doc).read_text(encoding="utf-8"), "buildah bud") == ci, doc


def test_the_docker_build_command_passes_the_same_arguments() -> None:
    """The documented docker build line is the buildah line's arguments, in the Dockerfile's header too."""
    ci = _build_command((ROOT / ".ci" / "image").read_text(encoding="utf-8"), "buildah bud")
    arguments = ci[ci.index("--build-arg") :]
    for doc in ("README.md", "deploy/kubernetes/README.md"):
        assert _build_command((ROOT / doc).read_text(encoding="utf-8"), "docker build") == (
            f"docker build {arguments}"
        ), doc
    header = (ROOT / "Dockerfile").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert f"docker build {arguments}" in header


def test_ci_and_the_docs_compute_the_version_the_same_way() -> None:
    """The VERSION=$(...) line of .ci/image is the guide's (whose own test runs it)."""
    line = next(
        line
        for line in (ROOT / ".ci" / "image").read_text(encoding="utf-8").splitlines()
        if line.startswith("VERSION=$(")
    )
    for doc in ("README.md", "deploy/kubernetes/README.md"):
        assert line in (ROOT / doc).read_text(encoding="utf-8").splitlines(), doc
