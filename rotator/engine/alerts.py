"""Alerts and the observers: one ``target.alert`` event, and every observer (metrics, webhook) told."""

from collections.abc import Callable

import structlog

from rotator.core.model import TargetKey
from rotator.core.ports import Alert, Observer
from rotator.core.spec import RotationSpec
from rotator.engine.context import Context
from rotator.engine.timing import expiring_on


log = structlog.get_logger("rotator")
#: The fixed list of alert reasons (also metric label values). ``unmanaged_expiring`` is the daemon's
#: expiry watch's digest: its ``target`` is a watched scope (``project:acme/app``), not a target.
ALERT_REASONS = (
    "drift",
    "in_use",
    "failed",
    "journal_lost",
    "connection",
    "lockout",
    "expiring",
    "no_access",
    "unmanaged_expiring",
)


def tell(ctx: Context, call: Callable[[Observer], None]) -> None:
    """Tell the observer something; its failure (a closed pipe, a full disk) never stops a rotation."""
    try:
        call(ctx.observer)
    except Exception as error:  # noqa: BLE001 - observers are told, never relied on
        log.warning("observer.failed", error=type(error).__name__)


def alert(  # noqa: PLR0913 - one alert, each part named at the call site
    ctx: Context,
    target: RotationSpec,
    key: TargetKey | None,
    reason: str,
    message: str,
    *,
    step: str = "prepare",
) -> None:
    """Raise an alert: one ``target.alert`` error event, and every observer (metrics, webhook) told.

    The alert carries the current token's expiry when it is already inside ``rotate_before``:
    a failure then is urgent, since the token will die unless a later rotation succeeds.
    """
    log.error("target.alert", target=target.name, reason=reason, step=step, error=message)
    now = ctx.clock()
    try:
        expires = expiring_on(ctx, target, key, now)
    except Exception:  # noqa: BLE001 - the journal may be what failed; alert without the expiry
        expires = None
    tell(ctx, lambda observer: observer.alert(Alert(target.name, reason, message, now, step, expires)))
