"""Secrets from the environment: variables, *_FILE, and the refusals that exit 2."""

import os

from pathlib import Path

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.environment import load_secrets
from rotator.errors import ConfigError
from rotator.secret import Secret


BASE = {"ROTATOR_GITLAB_TOKEN": "glpat-manager", "ROTATOR_INFISICAL_TOKEN": "jwt"}


def test_plain_variables() -> None:
    """Plain variables are read and wrapped as Secrets."""
    secrets = load_secrets(BASE)
    assert secrets.gitlab_token.reveal() == "glpat-manager"
    assert secrets.infisical_token == Secret("jwt")


def test_file_variant_drops_one_trailing_newline(tmp_path: Path) -> None:
    """NAME_FILE is read as UTF-8 with one trailing newline removed."""
    path = tmp_path / "token"
    path.write_text("glpat-from-file\n")
    secrets = load_secrets({"ROTATOR_GITLAB_TOKEN_FILE": str(path), "ROTATOR_INFISICAL_TOKEN": "jwt"})
    assert secrets.gitlab_token.reveal() == "glpat-from-file"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"ROTATOR_INFISICAL_TOKEN": "jwt"}, "ROTATOR_GITLAB_TOKEN"),
        ({**BASE, "ROTATOR_GITLAB_TOKEN_FILE": "/x"}, "ROTATOR_GITLAB_TOKEN"),
        ({**BASE, "ROTATOR_GITLAB_TOKEN": " "}, "ROTATOR_GITLAB_TOKEN"),
        ({"ROTATOR_GITLAB_TOKEN": "g"}, "ROTATOR_INFISICAL_TOKEN"),
        ({**BASE, "ROTATOR_INFISICAL_CLIENT_ID": "id"}, "ROTATOR_INFISICAL_TOKEN"),
        (
            {"ROTATOR_GITLAB_TOKEN": "g", "ROTATOR_INFISICAL_CLIENT_ID": "id"},
            "ROTATOR_INFISICAL_CLIENT_SECRET",
        ),
        (
            {"ROTATOR_GITLAB_TOKEN": "g", "ROTATOR_INFISICAL_CLIENT_SECRET": "s"},
            "ROTATOR_INFISICAL_CLIENT_ID",
        ),
        (
            {"ROTATOR_GITLAB_TOKEN_FILE": "/nonexistent/file", "ROTATOR_INFISICAL_TOKEN": "j"},
            "ROTATOR_GITLAB_TOKEN_FILE",
        ),
    ],
)
def test_refusals_name_the_variable(environ: dict[str, str], key: str) -> None:
    """Missing, doubled, empty or unreadable secrets raise ConfigError naming the variable."""
    with pytest.raises(ConfigError) as raised:
        load_secrets(environ)
    assert raised.value.key == key


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    """A *_FILE holding non-UTF-8 bytes is refused."""
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_secrets({"ROTATOR_GITLAB_TOKEN_FILE": str(path), "ROTATOR_INFISICAL_TOKEN": "j"})


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_a_secret_never_shows_its_value(value: str) -> None:
    """repr, str and format of a Secret do not depend on the value at all."""

    def renderings(secret: Secret) -> tuple[str, ...]:
        return (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>20}", f"{[secret]}")

    assert renderings(Secret(value)) == renderings(Secret("glpat-reference"))


def test_a_secret_cannot_be_pickled() -> None:
    """Pickling a Secret raises, so it cannot leak into files or queues."""
    import pickle  # noqa: PLC0415 - only this test pickles

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("glpat-x"))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["/dev/zero", "directory", "fifo", "oversized"])
def test_a_file_variable_reads_only_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    """NAME_FILE at /dev/zero, a directory, a FIFO or a file over 64 KiB: ConfigError naming NAME_FILE."""
    path = {"/dev/zero": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "token")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "oversized":
        path.write_bytes(b"g" * (64 * 1024 + 1))
    with pytest.raises(ConfigError) as raised:
        load_secrets({"ROTATOR_GITLAB_TOKEN_FILE": str(path), "ROTATOR_INFISICAL_TOKEN": "j"})
    assert raised.value.key == "ROTATOR_GITLAB_TOKEN_FILE"
    assert ("64 KiB" if kind == "oversized" else "not a regular file") in raised.value.problem


def test_a_file_variable_follows_a_symlink_to_a_secret_of_64_kib(tmp_path: Path) -> None:
    """A Kubernetes-style symlinked mount is read, up to exactly the 64 KiB bound."""
    target = tmp_path / "..data" / "token"
    target.parent.mkdir()
    target.write_bytes(b"g" * (64 * 1024 - 1) + b"\n")
    (tmp_path / "token").symlink_to(target)
    secrets = load_secrets(
        {"ROTATOR_GITLAB_TOKEN_FILE": str(tmp_path / "token"), "ROTATOR_INFISICAL_TOKEN": "j"}
    )
    assert secrets.gitlab_token.reveal() == "g" * (64 * 1024 - 1)
