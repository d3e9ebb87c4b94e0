"""Secrets from the environment: variables, *_FILE, and the refusals that exit 2."""

import os
import string
import tempfile

from collections.abc import Callable
from pathlib import Path

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.errors import ConfigError
from rotator.core.secret import Secret
from rotator.doors.environment import api_token, load_secrets, read_variable, webhook_url


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


#: Every variable rotator reads a credential from, and a call that reads it with the others valid.
SECRET_READERS: dict[str, Callable[[dict[str, str]], object]] = {
    "ROTATOR_GITLAB_TOKEN": lambda env: load_secrets({"ROTATOR_INFISICAL_TOKEN": "j", **env}),
    "ROTATOR_INFISICAL_TOKEN": lambda env: load_secrets({"ROTATOR_GITLAB_TOKEN": "g", **env}),
    "ROTATOR_INFISICAL_CLIENT_ID": lambda env: load_secrets(
        {"ROTATOR_GITLAB_TOKEN": "g", "ROTATOR_INFISICAL_CLIENT_SECRET": "s", **env}
    ),
    "ROTATOR_INFISICAL_CLIENT_SECRET": lambda env: load_secrets(
        {"ROTATOR_GITLAB_TOKEN": "g", "ROTATOR_INFISICAL_CLIENT_ID": "i", **env}
    ),
    "ROTATOR_API_TOKEN": api_token,
    "ROTATOR_WEBHOOK_URL": lambda env: webhook_url(env, None),
}
#: Characters no credential holds: controls (NUL, CR, LF, ESC, C1), format characters (BOM, zero-
#: width space, bidi overrides), every space and the line and paragraph separators.
NOT_IN_A_SECRET = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]) | st.sampled_from(
    "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029 "
)
#: Custom-prefix values: nothing token-shaped, so only this check keeps them out of a message.
WORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=24)


@given(
    name=st.sampled_from(sorted(SECRET_READERS)),
    head=WORD,
    bad=NOT_IN_A_SECRET,
    tail=WORD,
    from_file=st.booleans(),
)
def test_a_secret_with_a_space_or_control_character_is_refused_unshown(
    name: str, head: str, bad: str, tail: str, *, from_file: bool
) -> None:
    """Any secret holding whitespace or a control character is refused naming the variable, never echoed."""
    value = f"acme-{head}{bad}{tail}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "secret"
        path.write_text(f"{value}\n", encoding="utf-8", newline="")
        env = {f"{name}_FILE": str(path)} if from_file else {name: value}
        with pytest.raises(ConfigError) as raised:
            SECRET_READERS[name](env)
    assert raised.value.key == (f"{name}_FILE" if from_file else name)
    assert "one line with no spaces or control characters" in raised.value.problem
    shown = str(raised.value)
    assert f"acme-{head}" not in shown
    assert tail not in shown


@given(st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp"]), min_size=1))
def test_a_one_line_secret_is_read_as_it_is(value: str) -> None:
    """A value of visible characters is accepted unchanged, directly and from a file."""
    assert read_variable({"NAME": value}, "NAME") == value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "secret"
        path.write_text(f"{value}\n", encoding="utf-8", newline="")
        assert read_variable({"NAME_FILE": str(path)}, "NAME") == value


def test_a_token_file_with_a_second_newline_says_which_character(tmp_path: Path) -> None:
    """`echo` into a file that already ended in a newline: refused, naming U+000A, not the value."""
    path = tmp_path / "token"
    path.write_text("acme-Zk3xQ9vT2mLp8Rw4Yb6N\n\n")
    with pytest.raises(ConfigError) as raised:
        load_secrets({"ROTATOR_GITLAB_TOKEN_FILE": str(path), "ROTATOR_INFISICAL_TOKEN": "j"})
    assert raised.value.key == "ROTATOR_GITLAB_TOKEN_FILE"
    assert raised.value.problem.endswith("(it holds U+000A)")
    assert "Zk3x" not in str(raised.value)


def test_proc_self_environ_is_refused_as_a_secret_file() -> None:
    """/proc/self/environ is a 'regular file' of size 0 holding every variable: refused (NULs)."""
    with pytest.raises(ConfigError) as raised:
        load_secrets({"ROTATOR_GITLAB_TOKEN_FILE": "/proc/self/environ", "ROTATOR_INFISICAL_TOKEN": "j"})
    assert raised.value.key == "ROTATOR_GITLAB_TOKEN_FILE"
    assert "one line" in raised.value.problem


LOGIN_VARIABLES = (
    "ROTATOR_INFISICAL_TOKEN",
    "ROTATOR_INFISICAL_CLIENT_ID",
    "ROTATOR_INFISICAL_CLIENT_SECRET",
    "ROTATOR_INFISICAL_IDENTITY_ID",
    "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE",
)


@given(st.sets(st.sampled_from(LOGIN_VARIABLES)))
def test_exactly_one_complete_infisical_login_or_exit_2(chosen: set[str]) -> None:
    """Any mix of the login variables: one complete mode is taken; anything else names one of them, exit 2."""
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.skip("this test runs in a pod: an identity id alone would be a complete mode")
    with tempfile.TemporaryDirectory() as folder:
        token = Path(folder) / "token"
        token.write_text("eyJ.pod.jwt\n")
        values = {
            "ROTATOR_INFISICAL_TOKEN": "jwt",
            "ROTATOR_INFISICAL_CLIENT_ID": "id",
            "ROTATOR_INFISICAL_CLIENT_SECRET": "secret",
            "ROTATOR_INFISICAL_IDENTITY_ID": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE": str(token),
        }
        environ = {"ROTATOR_GITLAB_TOKEN": "g", **{name: values[name] for name in chosen}}
        modes = [
            {"ROTATOR_INFISICAL_TOKEN"},
            {"ROTATOR_INFISICAL_CLIENT_ID", "ROTATOR_INFISICAL_CLIENT_SECRET"},
            {"ROTATOR_INFISICAL_IDENTITY_ID", "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE"},
        ]
        if chosen in modes:
            secrets = load_secrets(environ)
            taken = (
                secrets.infisical_token is not None,
                secrets.infisical_client_id is not None,
                secrets.infisical_identity_id is not None,
            )
            assert sum(taken) == 1
            assert secrets.infisical_kubernetes_token_file == (str(token) if taken[2] else None)
            return
        with pytest.raises(ConfigError) as raised:
            load_secrets(environ)
        # The variable at fault is one given, or the missing half of the mode begun (the client id
        # names the secret it lacks; an identity id alone, the token file it then looks for).
        completes = {v for mode in modes if chosen & mode for v in mode}
        assert raised.value.key in (chosen | completes or {"ROTATOR_INFISICAL_TOKEN"})
        assert "eyJ.pod.jwt" not in str(raised.value)
