"""GitLab's error bodies (``reference/gitlab.md`` §1.9), for handlers and for injected faults."""

import math

from datetime import date, datetime, timedelta
from typing import Any, NoReturn

from rotator.testing._http import HTTPError, Request, Response


INVALID_TOKEN_REVOKED = "Token was revoked. You have to re-authorize from the user."  # noqa: S105 - a message
INVALID_TOKEN_EXPIRED = "Token is expired. You can either do re-authorization or token refresh."  # noqa: S105 - a message
INSUFFICIENT_SCOPE = "The request requires higher privileges than provided by the access token."


def message(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> NoReturn:
    """Answer ``status`` with ``body`` as-is."""
    raise HTTPError(Response(status, body, dict(headers or {})))


def error(status: int, text: str) -> NoReturn:
    """Answer ``{"message": text}``, GitLab's usual error shape."""
    message(status, {"message": text})


def date_param(params: dict[str, Any], key: str) -> date | None:
    """A ``YYYY-MM-DD`` parameter; Grape's 400 ``{"error": "KEY is invalid"}`` for anything else."""
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return message(400, {"error": f"{key} is invalid"})


def invalid_token(description: str) -> NoReturn:
    """The caller's own credential is expired or revoked (api_guard via rack-oauth2)."""
    message(
        401,
        {"error": "invalid_token", "error_description": description},
        {
            "WWW-Authenticate": (
                f'Bearer realm="", error="invalid_token", error_description="{description}"'
            ),
        },
    )


def insufficient_scope(scopes: frozenset[str]) -> NoReturn:
    """The credential is valid but lacks every scope the route accepts."""
    message(
        403,
        {
            "error": "insufficient_scope",
            "error_description": INSUFFICIENT_SCOPE,
            "scope": " ".join(sorted(scopes)),
        },
        {"WWW-Authenticate": 'Bearer realm="", error="insufficient_scope"'},
    )


_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def canned_error(status: int, shape: str | None, now: datetime, request: Request) -> Response:  # noqa: PLR0911 - one answer per status, a table in code
    """What GitLab answers with ``status``; ``shape`` picks a variant.

    Shapes: 400 ``param`` (Grape validation), 401 ``invalid_token``/``expired`` (own credential),
    403 ``insufficient_scope``, 429 ``app`` (application limiter, no headers) and ``bare`` (no
    headers at all), 502 ``html`` is the default (nginx's page).
    """
    del request
    if status == 400:
        body: Any = (
            {"error": "name is missing"}
            if shape == "param"
            else {"message": "400 Bad request - fault injected"}
        )
        return Response(400, body)
    if status == 401 and shape in {"invalid_token", "expired"}:
        text = INVALID_TOKEN_EXPIRED if shape == "expired" else INVALID_TOKEN_REVOKED
        try:
            invalid_token(text)
        except HTTPError as raised:
            return raised.response
    if status == 403 and shape == "insufficient_scope":
        try:
            insufficient_scope(frozenset({"api"}))
        except HTTPError as raised:
            return raised.response
    if status == 429:
        if shape == "app":
            return Response(
                429,
                {"message": {"error": "This endpoint has been requested too many times. Try again later."}},
            )
        if shape == "bare":
            return Response(429, "Retry later\n")
        reset = now + timedelta(seconds=1)
        return Response(
            429,
            "Retry later\n",
            {
                "Retry-After": "1",
                "RateLimit-Limit": "600",
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Observed": "601",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(math.ceil(reset.timestamp())),
                "RateLimit-ResetTime": reset.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            },
        )
    if status == 502 and shape != "json":
        return Response(502, _NGINX_502, {"Content-Type": "text/html"})
    phrases = {
        401: "401 Unauthorized",
        403: "403 Forbidden",
        404: "404 Not Found",
        405: "405 Method Not Allowed",
        409: "409 Conflict",
        422: "422 Unprocessable Entity",
        500: "500 Internal Server Error",
        502: "502 Bad Gateway",
        503: "503 Service Unavailable",
        504: "504 Gateway Timeout",
    }
    return Response(status, {"message": phrases.get(status, f"{status} Error")})
