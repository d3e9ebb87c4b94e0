"""The exception tree's messages: they name where things went wrong."""

from rotator.errors import ConfigError, GitLabError, RotatorError, UpstreamError


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
