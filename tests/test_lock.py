"""requirements.lock: every runtime dependency pinned by hash, within its bounds, refreshed by one command."""

import re
import tomllib

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
#: The one documented command that refreshes the lock (README, Development).
REFRESH = (
    "uv pip compile pyproject.toml --python-version 3.11 --python-platform linux --generate-hashes "
    "--output-file requirements.lock"
)


def _pins() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    entries = re.split(r"\n(?=\S)", LOCK.read_text(encoding="utf-8"))
    for entry in entries:
        found = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if found:
            pins[canonicalize_name(found[1])] = (Version(found[2]), entry.count("--hash=sha256:"))
    return pins


def _dependencies() -> list[Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return [Requirement(text) for text in tomllib.load(file)["project"]["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    """Each pyproject dependency is in the lock at a version its specifier (lower bound too) accepts."""
    pins = _pins()
    dependencies = _dependencies()
    assert dependencies
    for requirement in dependencies:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: refresh it ({REFRESH})"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} vs {requirement}"
        )


def test_every_pin_carries_a_hash_and_nothing_is_unpinned() -> None:
    """Every entry is name==version with at least one sha256 (pip --require-hashes needs both)."""
    pins = _pins()
    assert len(pins) > len(_dependencies())  # the transitive ones too
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []
    requirement_lines = [
        line for line in LOCK.read_text(encoding="utf-8").splitlines() if line and not line[0].isspace()
    ]
    assert all(line.startswith("#") or "==" in line for line in requirement_lines)


def test_the_lock_says_how_to_refresh_it_and_the_readme_documents_that_command() -> None:
    """The lock's header and README both give the one refresh command; the dev extra installs uv."""
    assert REFRESH in LOCK.read_text(encoding="utf-8")
    assert REFRESH in (ROOT / "README.md").read_text(encoding="utf-8")
    with (ROOT / "pyproject.toml").open("rb") as file:
        dev = [
            Requirement(text).name for text in tomllib.load(file)["project"]["optional-dependencies"]["dev"]
        ]
    assert "uv" in dev
