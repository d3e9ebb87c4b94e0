"""Infisical's error bodies (``reference/infisical.md`` §3): ``{reqId, statusCode, message, error}``."""

import secrets
import string

from typing import Any, NoReturn

from rotator.testing._http import HTTPError, Response


_ALPHANUMERIC = string.ascii_letters + string.digits


def req_id() -> str:
    """``req-`` and 14 alphanumerics, as Infisical's ``genReqId``."""
    return "req-" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(14))


def body(status: int, error: str, message: object, **extra: object) -> dict[str, Any]:
    """An Infisical error body."""
    return {"reqId": req_id(), "statusCode": status, "message": message, "error": error, **extra}


def fail(
    status: int, error: str, message: object, headers: dict[str, str] | None = None, **extra: object
) -> NoReturn:
    """Answer ``status`` with an Infisical error body."""
    raise HTTPError(Response(status, body(status, error, message, **extra), dict(headers or {})))


def canned(status: int, shape: str | None) -> Response:
    """What Infisical answers with ``status`` when a fault is injected."""
    table: dict[int, tuple[str, Any]] = {
        400: ("BadRequest", "Failed to validate credentials: Unauthorized"),
        401: ("UnauthorizedError", "No identity access token found"),
        403: ("TokenError", "Your token has expired. Please re-authenticate."),
        404: ("NotFound", "Could not find App Connection with ID fault-injected"),
        422: ("ValidationFailure", [{"code": "custom", "message": "fault injected", "path": []}]),
        429: ("RateLimitExceeded", "Rate limit exceeded. Please try again in 1 seconds"),
        500: ("InternalServerError", "Something went wrong"),
    }
    if status == 403 and shape == "permission":
        return Response(
            403,
            body(403, "PermissionDenied", "You are not allowed to edit on app-connections", details=[]),
        )
    if status == 401 and shape == "missing":
        return Response(401, body(401, "UnauthorizedError", "Token missing"))
    if status in {502, 503, 504} and shape != "json":
        # A load balancer's page, not Infisical's handler: HTML.
        return Response(status, f"<html><body><h1>{status}</h1></body></html>", {"Content-Type": "text/html"})
    error, message = table.get(status, ("InternalServerError", "Something went wrong"))
    headers = {"retry-after": "1"} if status == 429 and shape != "bare" else {}
    return Response(status, body(status, error, message), headers)
