"""The failure matrix: every failure mode of an upstream call, and what a run meeting it must end in."""

from rotator.testing import Fault
from tests.faults.calls import Call


#: mode → (fault kind, status, shape)
MODES: dict[str, tuple[str, int, str | None]] = {
    "400": ("fail", 400, None),
    "401": ("fail", 401, None),
    "401-invalid-token": ("fail", 401, "invalid_token"),
    "403": ("fail", 403, None),
    "404": ("fail", 404, None),
    "422": ("fail", 422, None),
    "429-retry-after": ("fail", 429, None),
    "429-bare": ("fail", 429, "bare"),
    "500": ("fail", 500, None),
    "502": ("fail", 502, None),
    "503": ("fail", 503, None),
    "dropped-before": ("drop_before", 0, None),
    "dropped-after-applied": ("drop_after", 0, None),
    "read-timeout": ("hang", 0, None),
}


#: Answers that refuse a request for good: never retried, so the run fails on the first one.
REFUSALS = frozenset({"400", "401", "401-invalid-token", "403", "404", "422"})
#: Infisical answers these when the identity's access token is rejected: rotator logs in again.
REAUTH = frozenset({"401", "401-invalid-token", "403"})


def expected_exit(call: Call, mode: str, times: int | None) -> int:
    """The exit code the campaign expects from the run that meets the fault (a table, as rules)."""
    if times is None:
        # A persistent fault: retries run out, re-logins are refused again; only a 404 on the
        # pre-revoke read is harmless (the idempotent DELETE that follows proves the revoke).
        return 0 if (call.label, mode) == ("gitlab old-token check before revoke", "404") else 1
    if call.label == "gitlab new-token self-check":
        return 0  # the check is retried for a while: a new token may take a moment to work
    if call.label == "gitlab token create":
        return 0 if mode.startswith("429") else 1  # only a 429 proves nothing was created
    if call.label == "gitlab old-token check before revoke" and mode == "404":
        return 0
    if call.route.split()[1].startswith("/api/v1") and mode in REAUTH and call.label != "infisical login":
        return 0
    return 1 if mode in REFUSALS else 0


def fault_for(route: str, mode: str, times: int | None) -> Fault:
    """The fault that makes ROUTE fail in MODE for the next TIMES requests (``None``: all)."""
    kind, status, shape = MODES[mode]
    if route.split()[1].startswith("/api/v1") and shape == "invalid_token":
        shape = "missing"  # Infisical's second 401 shape: no token at all
    return Fault(route, kind, status or 500, shape, seconds=3.0, times=times)  # type: ignore[arg-type]
