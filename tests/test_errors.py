"""The exception tree's messages: they name where things went wrong."""

from rotator.core.errors import ConfigError, GitLabError, RotatorError, UpstreamError


def test_config_error_names_the_key() -> None:
    """A ConfigError prints 'key: problem'."""
    error = ConfigError("targets[0].grace", "must be shorter than rotate_every")
    assert str(error) == "targets[0].grace: must be shorter than rotate_every"
    assert isinstance(error, RotatorError)


def test_upstream_error_names_target_step_route_and_status() -> None:
    """An upstream error names target, step, upstream, route and status."""
    error = GitLabError(
        "gitlab",
        "POST /projects/:id/access_tokens",
        503,
        "503 Service Unavailable",
        not_applied=True,
        target="app-deploy",
        step="create",
    )
    assert str(error) == (
        "target=app-deploy step=create gitlab POST /projects/:id/access_tokens -> 503: "
        "503 Service Unavailable"
    )
    assert isinstance(error, UpstreamError)


def test_upstream_error_without_response_says_so() -> None:
    """A network failure has no status and says 'no response'."""
    error = UpstreamError("infisical", "PATCH /x", None, "read timeout", not_applied=False)
    assert str(error) == "infisical PATCH /x -> no response: read timeout"


def test_a_config_error_is_one_line_whatever_the_input_held() -> None:
    """A newline or other control character from a bad value is shown escaped, never as a new line."""
    error = ConfigError("targets[0].token.scopes", "unknown scope(s) \n\x1b[31m; project tokens accept api")
    assert str(error) == "targets[0].token.scopes: unknown scope(s) \\n\\x1b[31m; project tokens accept api"


def test_an_upstream_error_is_one_line_whatever_the_upstream_wrote() -> None:
    """An upstream's newline, ANSI escape or bidi override is shown escaped in the error's one line."""
    error = GitLabError(
        "gitlab", "GET /projects/:id", 404, "gone\n2026 ok: rotated\x1b[2J\u202e", not_applied=True
    )
    assert str(error) == r"gitlab GET /projects/:id -> 404: gone\n2026 ok: rotated\x1b[2J\u202e"


def test_a_config_error_escapes_c1_controls_and_line_separators_too() -> None:
    """C1 controls (CSI) and Unicode line separators cannot split or recolour a config error either."""
    error = ConfigError("targets[0].name", "bad \x9b31m\u2028next")
    assert str(error) == r"targets[0].name: bad \x9b31m\u2028next"
