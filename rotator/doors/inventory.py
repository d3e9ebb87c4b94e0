"""``rotator inventory``: every active token in the configured scopes, and who owns it.

:func:`scopes_of` turns the config into the engine's scopes (the daemon's expiry watch uses it
too); :func:`run` is the command: the GitLab manager token alone, the journal read-only (one that
does not exist yet means nothing is managed, and no file is created), reads only upstream
(:func:`rotator.engine.inventory.take_inventory`). stdout carries the table or the JSON
document (:func:`as_json`, documented in ``docs/operations.md``); stderr the progress of large
scopes and one line per scope that could not be listed whole (then exit 1).
"""

import argparse
import json
import os
import sys

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator.adapters.logs import configure
from rotator.core.durations import days_column, format_duration, stamp, stamp_or_none
from rotator.core.inventory import Inventory, Listed, Scope, expiring_unmanaged, scope_label
from rotator.core.model import Kind
from rotator.core.ports import GitLabPort, Journal
from rotator.core.redact import redact
from rotator.doors import report, wiring
from rotator.doors.config import ACCESS_LEVELS, Config, Target, engine_spec
from rotator.doors.outcome import Outcome
from rotator.engine.inventory import take_inventory
from rotator.engine.removed import classify
from rotator.engine.run import require_known


if TYPE_CHECKING:
    from rotator.doors.watch import Watching


_ROLES = {level: name for name, level in ACCESS_LEVELS.items()}
_KINDS = {
    "project_access_token": "project",
    "group_access_token": "group",
    "personal_access_token": "personal",
}


def target_scope(target: Target) -> Scope:
    """The scope of one target's tokens, labelled with the config's values as written."""
    return Scope(
        scope_label(target.kind, target.owner_ref, target.via), target.kind, target.owner_ref, target.via
    )


def scopes_of(config: Config, target: str | None = None) -> tuple[Scope, ...]:
    """The scopes to list: the targets' in config order, then ``watch.groups``, then ``watch.projects``.

    ``target`` (a configured name, already checked) keeps that target's scope alone. A scope
    written twice is listed once, where it first appears; a watched group that is also a group
    target's owner is listed there, whole.
    """
    targets = [t for t in config.targets if target is None or t.name == target]
    scopes = [target_scope(t) for t in targets]
    if target is None:
        watch = config.watch
        scopes += [
            Scope(
                scope_label(Kind.GROUP, g),
                Kind.GROUP,
                g,
                whole_group=True,
                include_subgroups=watch.include_subgroups,
            )
            for g in watch.groups
        ]
        scopes += [Scope(scope_label(Kind.PROJECT, p), Kind.PROJECT, p) for p in watch.projects]
    kept: dict[str, Scope] = {}
    for scope in scopes:
        first = kept.get(scope.label)
        if first is None:
            kept[scope.label] = scope
        elif scope.whole_group:
            kept[scope.label] = scope  # a dict keeps the first one's place
    return tuple(kept.values())


def take(  # noqa: PLR0913, PLR0917 - take_inventory's arguments, the config in place of its URL
    gitlab: GitLabPort,
    journal: Journal,
    config: Config,
    scopes: Sequence[Scope],
    now: datetime,
    progress: Callable[[str], None] | None = None,
) -> Inventory:
    """:func:`take_inventory` for ``config``: its GitLab, and its removed keys (offline, from the journal)."""
    removed = {r.key for r in classify(engine_spec(config), journal)[0]}
    return take_inventory(gitlab, journal, config.gitlab.url, scopes, now, progress, removed)


def watching_of(config: Config, rt: wiring.Runtime) -> "Watching | None":
    """What the daemon's watch takes its inventory with; ``None`` when ``watch.expiry_watch`` is off."""
    # Imported here: the watch brings prometheus-client, which run-once does not pay for.
    from rotator.doors.watch import Watching  # noqa: PLC0415

    if not config.watch.expiry_watch:
        return None
    scopes = scopes_of(config)
    return Watching(
        # A lambda, so that each turn reads the clock afresh.
        lambda: take(rt.gitlab, rt.journal, config, scopes, rt.engine.ctx.clock()),
        config.watch.interval,
        config.watch.warn_before,
    )


def run(args: argparse.Namespace, config: Config) -> Outcome:
    """``inventory [--json] [--target NAME]``: see the module docstring."""
    configure(args.log)
    if args.target is not None:
        require_known(args.target, (t.name for t in config.targets), key="--target", listed="configured")
    scopes = scopes_of(config, args.target)
    gitlab = wiring.build_gitlab(config, os.environ)
    try:
        journal = wiring.read_journal(config, missing_ok=True)
        try:
            now = wiring.clock(config, os.environ)()
            inventory = take(gitlab, journal, config, scopes, now, progress=_progress)
        finally:
            journal.close()
    finally:
        gitlab.close()
    if args.json:
        print(json.dumps(as_json(inventory), indent=2))
    else:
        print(table(inventory, config.watch.warn_before, report.terminal_width()))
    for failed in inventory.failed:
        print(f"rotator inventory: {redact(failed.error or '')}", file=sys.stderr)
    return Outcome.FAILING if inventory.failed else Outcome.OK


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _owner(token: Listed) -> str:
    managed = token.managed
    if managed is None:
        return "unmanaged"
    role = managed.role.value.replace("_", " ")
    if managed.unattended:
        return f"unmanaged (was {managed.target}'s {role}; target removed)"
    notes = (", adopted" if managed.adopted else "") + (", target removed" if managed.removed else "")
    return f"{managed.target} ({role}{notes})"


def _access(level: int | None) -> str:
    return "-" if level is None else _ROLES.get(level, str(level))


def table(inventory: Inventory, warn_before: timedelta, width: int = report.DEFAULT_WIDTH) -> str:
    """The human form: one row per token, then a summary line."""
    now = inventory.at
    header = ("SCOPE", "HOLDER", "KIND", "ID", "NAME", "SCOPES", "ACCESS", "CREATED", "EXPIRES", "DAYS LEFT")
    rows: list[tuple[str, ...]] = [(*header, "LAST USED", "OWNER")]
    for token in inventory.tokens():
        info = token.info
        rows.append(
            (
                token.scope,
                token.holder,
                _KINDS[token.kind.value],
                str(info.id),
                redact(info.name),
                ",".join(info.scopes) or "-",
                _access(info.access_level),
                _day(info.created_at) or "-",
                info.expires_at.isoformat() if info.expires_at else "never",
                days_column(token.days_left(now)),
                _day(info.last_used_at) or "never",
                _owner(token),
            )
        )
    lines = [f"as of {stamp(now)}", *_columns(rows)]
    tokens = inventory.tokens()
    managed = sum(1 for t in tokens if not t.unmanaged)
    soon = sum(len(expiring_unmanaged(s, now, warn_before)) for s in inventory.scopes)
    summary = (
        f"{len(tokens)} active token(s) in {len(inventory.scopes)} scope(s): {managed} managed,"
        f" {len(tokens) - managed} unmanaged ({soon} expiring within {format_duration(warn_before)},"
        " watch.warn_before)"
    )
    if inventory.failed:
        summary += f"; {len(inventory.failed)} scope(s) not listed whole (stderr says why)"
    lines += report.wrapped(summary, width)
    return "\n".join(lines)


def _day(when: datetime | None) -> str | None:
    """The UTC date of a GitLab time (an instance set to a time zone answers in it), as the JSON's."""
    return stamp(when)[:10] if when is not None else None


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def as_json(inventory: Inventory) -> dict[str, Any]:
    """The stable JSON document (``docs/operations.md``, "Inventory"): times RFC 3339 UTC, dates ISO."""
    return {
        "generated_at": stamp(inventory.at),
        "scopes": [
            {"scope": s.scope, "error": redact(s.error) if s.error else None} for s in inventory.scopes
        ],
        "tokens": [_token(t, inventory.at) for t in inventory.tokens()],
    }


def _token(token: Listed, now: datetime) -> dict[str, Any]:
    info, managed = token.info, token.managed
    return {
        "scope": token.scope,
        "kind": token.kind.value,
        "holder": token.holder,
        "id": info.id,
        "name": redact(info.name),
        "scopes": list(info.scopes),
        "access_level": info.access_level,
        "created_at": stamp_or_none(info.created_at),
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "days_left": token.days_left(now),
        "last_used_at": stamp_or_none(info.last_used_at),
        "owner": "unmanaged" if token.unmanaged else "managed",
        "target": managed.target if managed else None,
        "role": managed.role.value if managed else None,
        "adopted": managed.adopted if managed else None,
        "removed_target": managed.removed if managed else None,
    }
