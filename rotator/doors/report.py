"""``status`` and ``history``: what the journal knows, offline, as values of the read model.

:func:`read_status` and :func:`read_history` build :mod:`rotator.doors.readmodel` values; the CLI
prints them with :func:`status_table` and :func:`history_table` or as JSON, the HTTP API serves the
same values. Both read only the journal (no secrets, no upstream call), so they answer instantly and work
while GitLab or Infisical is down. ``status`` applies the exit-1 rule from the journal: a target
frozen by drift, holding a revoke, holding a live token it has no access to revoke, or backing off
after a failure; a removed key holding a revoke or a live token it has no access to revoke.
"""

import os
import re
import sys
import textwrap
import time

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from rotator.adapters import cron
from rotator.core import model
from rotator.core.durations import days_column, stamp, stamp_or_none
from rotator.core.errors import said_of
from rotator.core.model import Role, RotationRecord, TargetState, TokenRecord, short_hash
from rotator.core.ports import Journal
from rotator.core.schedule import decide, expiry_instant
from rotator.doors.config import Config, engine_spec
from rotator.doors.readmodel import (
    Drift,
    HistoryRow,
    PendingRevoke,
    RemovedStatus,
    RetiredToken,
    Status,
    TargetStatus,
    TombstoneStatus,
    UnfinishedRotation,
    UnresolvedProject,
    UntrackedToken,
    UntrackedTokens,
    as_json,
    shown,
)
from rotator.engine.context import Context, Settings
from rotator.engine.removed import find_removed, live, plan_removed
from rotator.engine.retire import describe_untracked
from rotator.engine.run import (
    Engine,
    awaits_revoke,
    describe,
    removed_failing_reason,
    require_known,
)
from rotator.engine.timing import lifetime_note


#: The width long lines are wrapped to when the terminal's is unknown (output to a pipe or a file).
DEFAULT_WIDTH = 100
#: Narrower than this, wrapping would stack a word per line: take the long line instead.
_MIN_WIDTH = 40
#: A command in backticks, kept on one line when wrapping; the no-break space holds it together.
_COMMAND = re.compile(r"`[^`]*`")
_NBSP = "\u00a0"


def terminal_width(environ: Mapping[str, str] | None = None) -> int:
    """The width to wrap long lines to: ``COLUMNS``, else the terminal's, else :data:`DEFAULT_WIDTH`.

    The terminal is asked only when stdout is one: a pipe or a file gets the same table every time.
    """
    columns = (os.environ if environ is None else environ).get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else DEFAULT_WIDTH
    except (OSError, ValueError):  # no file descriptor (a captured stream), or not a terminal after all
        return DEFAULT_WIDTH


def _offline_engine(config: Config, journal: Journal, clock: Callable[[], datetime]) -> Engine:
    # status never calls upstream: the ports are absent, and Engine.key(resolve=False) never uses them.
    ports = cast("Any", None)
    ctx = Context(
        ports,
        ports,
        journal,
        clock,
        lambda _s: None,
        time.monotonic,
        config.gitlab.url,
        "status",
        settings=Settings(run_interval=config.daemon.check_interval),
        cron=cron.next_fire,
    )
    return Engine(engine_spec(config), ctx)


def status(config: Config, journal: Journal, clock: Callable[[], datetime]) -> dict[str, Any]:
    """``status --json``'s document: :func:`read_status` as JSON."""
    return cast("dict[str, Any]", as_json(read_status(config, journal, clock)))


def read_status(config: Config, journal: Journal, clock: Callable[[], datetime]) -> Status:
    """Every configured target (one row each) and the removed keys still tracked, as of now."""
    engine = _offline_engine(config, journal, clock)
    now = clock()
    rows = []
    for target in engine.spec.targets:
        key = engine.key(target, resolve=False)
        situation, state = engine.situation(target, key)
        tokens = journal.tokens(key) if key else []
        current = [t for t in tokens if t.role is Role.CURRENT]
        last = journal.rotations(key, limit=1) if key else []
        work = decide(situation, now, force=False, take_over=False)
        failing = engine.failing(target, key, state, now)
        unresolved = engine.unresolved(target, key)
        rows.append(
            shown(
                TargetStatus(
                    target=target.name,
                    token_id=current[-1].token_id if current else None,
                    expires_at=current[-1].expires_at.isoformat()
                    if current and current[-1].expires_at
                    else None,
                    # Rounded down (timedelta.days): 0 is less than a day, negative is expired.
                    expires_in_days=(expiry_instant(current[-1].expires_at) - now).days
                    if current and current[-1].expires_at
                    else None,
                    last_rotation=stamp_or_none(last[0].planned_at) if last else None,
                    last_outcome=last[0].outcome.value if last else None,
                    next_due=stamp_or_none(situation.due.next_due),
                    due_reason=situation.due.reason,
                    would=describe(work, situation, None),
                    pending_revokes=_awaiting_revoke(tokens),
                    possibly_held=tuple(t.token_id for t in tokens if t.role is Role.POSSIBLY_HELD),
                    drift=None
                    if not (state and state.drift_since)
                    else Drift(
                        since=stamp_or_none(state.drift_since),
                        expected=short_hash(state.verified_hash),
                        observed=short_hash(state.observed_hash),
                    ),
                    holding_revoke_since=stamp_or_none(state.hold_since) if state else None,
                    backoff_until=stamp_or_none(state.backoff_until) if state and state.failures else None,
                    last_error=state.last_error if state else (unresolved.error if unresolved else None),
                    failing=failing is not None,
                    failing_reason=failing,
                    untracked_tokens=_untracked(state),
                    unresolved_project=_unresolved(unresolved),
                )
            )
        )
    return Status(as_of=stamp(now), targets=tuple(rows), removed=removed(config, journal, now))


def _awaiting_revoke(tokens: Sequence[TokenRecord]) -> tuple[PendingRevoke, ...]:
    """Tokens waiting for their revoke (a "no access" one too), as ``status`` shows them."""
    return tuple(
        PendingRevoke(
            token_id=t.token_id,
            revoke_after=stamp_or_none(t.revoke_after),
            no_access_since=stamp_or_none(t.no_access_since),
        )
        for t in tokens
        if awaits_revoke(t)
    )


def _unfinished(rotation: RotationRecord | None) -> UnfinishedRotation | None:
    if rotation is None:
        return None
    return UnfinishedRotation(rotation=rotation.id, step=rotation.step.value, token_name=rotation.token_name)


def removed(config: Config, journal: Journal, now: datetime) -> tuple[RemovedStatus, ...]:
    """The journal keys no configured target maps to that still hold something, and the way out."""
    rows = []
    for found in find_removed(engine_spec(config), journal, now):
        tokens = live(journal.tokens(found.key), now)
        current = [t for t in tokens if t.role is Role.CURRENT]
        plan = plan_removed(journal, found, now)
        failing = removed_failing_reason(journal.target(found.key), now, tokens)
        rows.append(
            shown(
                RemovedStatus(
                    key=str(found.key),
                    target=found.name,
                    token_id=current[-1].token_id if current else None,
                    expires_at=current[-1].expires_at.isoformat()
                    if current and current[-1].expires_at
                    else None,
                    pending_revokes=_awaiting_revoke(tokens),
                    possibly_held=tuple(
                        t.token_id
                        for t in tokens
                        if t.role in (Role.POSSIBLY_HELD, Role.CANDIDATE) and not awaits_revoke(t)
                    ),
                    connection_used_by=found.owner.name if found.owner else None,
                    revoke_next_run=tuple(t.token_id for t in plan.due),
                    left_alone=tuple(plan.left),
                    failing=failing is not None,
                    failing_reason=failing,
                    # Names a late create may still use: `forget` re-checks (--revoke) or refuses.
                    tombstones=tuple(
                        TombstoneStatus(name=s.name, until=stamp_or_none(s.until))
                        for s in journal.tombstones(found.key)
                    ),
                    unfinished=_unfinished(journal.unfinished(found.key)),
                    forget=found.forget,
                )
            )
        )
    return tuple(rows)


def _unresolved(record: model.UnresolvedProject | None) -> UnresolvedProject | None:
    """The recorded failure to resolve the target's project path, or None."""
    if record is None:
        return None
    return UnresolvedProject(
        project=record.project,
        since=stamp_or_none(record.since),
        last_failed=stamp_or_none(record.at),
        failures=record.failures,
        status=record.status,
        error=record.error,
    )


def _untracked(state: TargetState | None) -> UntrackedTokens | None:
    """The take-over's list of active tokens no target tracks, or None if no take-over recorded one."""
    if state is None or state.untracked_as_of is None:
        return None
    return UntrackedTokens(
        as_of=stamp_or_none(state.untracked_as_of),
        tokens=tuple(
            UntrackedToken(token_id=token_id, name=name, expires_at=expires)
            for token_id, name, expires in state.untracked
        ),
    )


def lifetime_notes(config: Config, journal: Journal, clock: Callable[[], datetime]) -> dict[str, str]:
    """Per target, the rule-6 note when GitLab's lifetime cap overrides ``rotate_before``."""
    engine = _offline_engine(config, journal, clock)
    notes = {}
    for target in engine.spec.targets:
        note = lifetime_note(engine.ctx, target, engine.key(target, resolve=False))
        if note is not None:
            notes[target.name] = note
    return notes


def status_table(report: Status, width: int = DEFAULT_WIDTH) -> str:
    """The human form of :func:`read_status`; notes and errors below the table, wrapped to ``width``."""
    lines = [f"as of {report.as_of}"]
    header = ("TARGET", "TOKEN", "EXPIRES", "EXPIRES IN", "LAST", "NEXT DUE", "PENDING REVOKE", "DRIFT")
    rows = [header]
    rows += [
        (
            t.target,
            str(t.token_id or "-"),
            t.expires_at or "-",
            days_column(t.expires_in_days),
            t.last_outcome or "never",
            f"{t.next_due or '-'} ({t.due_reason})",
            _pending_summary(t.pending_revokes),
            f"since {t.drift.since}" if t.drift else "-",
        )
        for t in report.targets
    ]
    lines += _columns(rows)
    for t in report.targets:
        # Below the table, not in a column: an upstream error is long, and cut short it says nothing.
        if t.failing_reason:
            lines += _wrapped(f"{t.target}: failing: {said_of(t.target, t.failing_reason)}", width)
        last_error = said_of(t.target, t.last_error) if t.last_error else None
        # A failing reason says what to do (drift, a held revoke); the error what was found: both,
        # unless the reason already quotes the error (backing off after a failure).
        if last_error and last_error not in (t.failing_reason or ""):
            lines += _wrapped(f"{t.target}: last error: {last_error}", width)
        untracked = t.untracked_tokens
        if untracked and untracked.tokens:
            tokens = describe_untracked(tuple((u.token_id, u.name, u.expires_at) for u in untracked.tokens))
            lines += _wrapped(
                f"{t.target}: untracked active tokens as of {untracked.as_of} (take-over;"
                f" rotator leaves them alone, revoke the one you no longer need): {tokens}",
                width,
            )
    lines += _removed_lines(report.removed, width)
    return "\n".join(lines)


def _removed_lines(removed: Sequence[RemovedStatus], width: int) -> list[str]:
    """The removed keys still tracked: a table, then what each still holds and the way out."""
    if not removed:
        return []
    lines = [
        "",
        "removed from the config, still tracked (revoked when safe; `rotator forget` lets one go):",
    ]
    gone = [("KEY", "WAS", "TOKEN", "PENDING REVOKE", "HELD?", "CONNECTION NOW USED BY")]
    gone += [
        (
            r.key,
            r.target,
            str(r.token_id or "-"),
            _pending_summary(r.pending_revokes),
            ",".join(str(i) for i in r.possibly_held) or "-",
            r.connection_used_by or "-",
        )
        for r in removed
    ]
    lines += _columns(gone)
    for r in removed:
        lines += [f"  {r.key}: tombstoned name {t.name} until {t.until}" for t in r.tombstones]
        if r.unfinished:
            u = r.unfinished
            lines.append(f"  {r.key}: rotation {u.rotation} stopped at {u.step}; the next run resumes it")
    lines += [f"  {r.forget}" for r in removed]  # a command to paste: one line, however long
    for r in removed:
        if r.failing:
            lines += _wrapped(f"{r.target} (removed): failing: {r.failing_reason}", width)
    return lines


def _pending_summary(pending: Sequence[PendingRevoke]) -> str:
    """``2, next 2026-12-05T10:00:00Z``: how many wait for their revoke, and the next one due.

    A token the manager has no access to revoke has no next time (``2 (1 NO ACCESS), next ...``);
    ``status --json`` lists each token.
    """
    if not pending:
        return "-"
    blocked = sum(1 for p in pending if p.no_access_since)
    # One format (RFC 3339 UTC, to the second) throughout, so the text sorts by time.
    due = sorted(p.revoke_after for p in pending if p.revoke_after and not p.no_access_since)
    count = f"{len(pending)} ({blocked} NO ACCESS)" if blocked else str(len(pending))
    return f"{count}, next {due[0]}" if due else count


def _wrapped(line: str, width: int, indent: str = "  ") -> list[str]:
    """``line`` wrapped at spaces to ``width``, continued under ``indent``.

    Never mid-word: a word longer than the width (a URL) is kept whole, and so is a command in
    backticks (`rotator rotate app-deploy --take-over`), which is copied and pasted as one.
    """
    kept = _COMMAND.sub(lambda found: found.group(0).replace(" ", _NBSP), line)
    wrapped = textwrap.wrap(
        kept,
        max(width, _MIN_WIDTH),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [part.replace(_NBSP, " ") for part in wrapped] or [line]


#: The same wrapping for the upstream look's lines (rotator.doors.live).
wrapped = _wrapped


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def history(journal: Journal, config: Config, name: str | None, limit: int) -> list[dict[str, Any]]:
    """``history --json``'s document: :func:`read_history` as JSON."""
    return cast("list[dict[str, Any]]", as_json(read_history(journal, config, name, limit)))


def read_history(journal: Journal, config: Config, name: str | None, limit: int) -> tuple[HistoryRow, ...]:
    """Rotations newest first; each row lists the tokens it retired and how they were revoked."""
    names = {str(t.connection_id): t.name for t in config.targets}
    if name is None:
        rotations: list[RotationRecord] = journal.rotations(None, limit=limit)
    else:
        # A row shows its connection's configured name, else the name it was recorded with (so a
        # removed target's history stays readable): the pairs that show as `name` are asked for.
        pairs = journal.recorded_names()
        seen = {names.get(key.connection_id, target) for key, target in pairs}
        configured = [t.name for t in config.targets]
        require_known(name, [*configured, *sorted(seen - set(configured))])
        wanted = [(key, target) for key, target in pairs if names.get(key.connection_id, target) == name]
        rotations = journal.rotations_of(wanted, limit) if wanted else []
    rows = []
    tokens_by_key: dict[str, list[TokenRecord]] = {}
    for r in rotations:
        tokens = tokens_by_key.setdefault(str(r.key), journal.tokens(r.key))
        rows.append(
            shown(
                HistoryRow(
                    rotation=r.id,
                    target=names.get(r.key.connection_id, r.target),
                    trigger=r.trigger,
                    started=stamp_or_none(r.planned_at),
                    finished=stamp_or_none(r.finished_at),
                    outcome=r.outcome.value,
                    step=r.step.value,
                    old_token_id=r.old_token_id,
                    new_token_id=r.new_token_id,
                    expires_at=r.expires_at.isoformat() if r.expires_at else None,
                    pre_hash=short_hash(r.pre_hash),
                    patch_hash=short_hash(r.patch_hash),
                    reread_hash=short_hash(r.reread_hash),
                    retired=tuple(
                        RetiredToken(
                            token_id=t.token_id, revoked_at=stamp_or_none(t.revoked_at), evidence=t.evidence
                        )
                        for t in tokens
                        if t.retired_by == r.id
                    ),
                    error=r.error,
                )
            )
        )
    return tuple(rows)


def history_table(rows: Sequence[HistoryRow], width: int = DEFAULT_WIDTH) -> str:
    """The human form of :func:`read_history`; a row's error on the lines below it, wrapped to ``width``."""
    header = ("STARTED", "TARGET", "ROTATION", "OUTCOME", "LAST STEP", "OLD>NEW", "HASH", "RETIRED")
    table = [header]
    for r in rows:
        retired = ",".join(f"{t.token_id}{'(revoked)' if t.revoked_at else ''}" for t in r.retired)
        table.append(
            (
                r.started or "-",
                r.target,
                r.rotation[:8],
                r.outcome,
                r.step,
                f"{r.old_token_id or '-'}>{r.new_token_id or '-'}",
                r.patch_hash or "-",
                retired or "-",
            )
        )
    lines = _columns(table)
    out = lines[:1]
    for line, r in zip(lines[1:], rows, strict=True):
        out.append(line)
        if r.error:
            out += _wrapped(f"  error: {said_of(r.target, r.error)}", width, indent="    ")
    return "\n".join(out)
