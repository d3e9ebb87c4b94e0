"""The upstream look at the doors: under each target of ``plan`` (and ``--dry-run``), and ``status --live``.

The look itself (:class:`rotator.engine.look.Look`) reads and never writes; here its findings are
worded as ``check`` words them (a refused credential names the variable to fix, an unknown
connection its config key: :mod:`rotator.doors.preflight`), redacted (they quote upstream names and
messages), and laid out for a terminal or as :class:`rotator.doors.readmodel.Live` for JSON.
"""

from collections.abc import Mapping, Sequence

from rotator.core.durations import stamp
from rotator.core.errors import said_of
from rotator.core.redact import redact
from rotator.doors import preflight, report, wiring
from rotator.doors.readmodel import Finding, Live, LiveTarget, shown
from rotator.engine import look
from rotator.engine.run import TargetReport


#: The levels that leave a target failing: a problem, drift, or an item not asked because of one.
_FAILING = look.FAILING | {look.SKIP}
#: Where a wrapped finding's text goes on: under the text, past the level's column.
_LEVEL_WIDTH = 8


def read_live(
    rt: wiring.Runtime,
    names: Sequence[str],
    environ: Mapping[str, str],
    *,
    force: bool = False,
    take_over: bool = False,
) -> Live:
    """Look upstream at the targets ``names`` (all if none), reading only; each read once.

    The connection is judged as the next run would judge it: this command's run (``force``,
    ``take_over``) for a dry run, the next scheduled one otherwise.
    """
    engine = rt.engine
    wording = preflight.Wording.of(environ)
    looking = look.Look(engine.ctx, wording.blocking, force=force, take_over=take_over)
    selected = engine.select(names)
    index = {t.name: i for i, t in enumerate(engine.spec.targets)}
    credentials = looking.credentials(selected[0].connection_id if selected else None)
    targets = []
    for target in selected:
        key = engine.key(target, resolve=False)
        situation, state = engine.situation(target, key)
        found = looking.target(target, key, index[target.name], state, situation)
        targets.append(
            LiveTarget(
                target=target.name,
                failing=any(f.level in _FAILING for f in found.findings),
                findings=tuple(_worded(f, wording) for f in found.findings),
            )
        )
    return shown(
        Live(
            as_of=stamp(engine.ctx.clock()),
            failing=any(f.failing for f in credentials) or any(t.failing for t in targets),
            credentials=tuple(_worded(f, wording) for f in credentials),
            targets=tuple(targets),
        )
    )


def _worded(finding: look.Finding, wording: preflight.Wording) -> Finding:
    """The finding as people read it: a failed call says what to fix, as ``check`` says it."""
    text = finding.text if finding.error is None else wording.problem(finding.error, finding.key)
    return Finding(level=finding.level, what=finding.what, text=text)


def finding_lines(findings: Sequence[Finding], width: int, indent: str = "") -> list[str]:
    """One line per finding, ``check``'s layout (``ok      what: text``), wrapped under the text."""
    lines = []
    for f in findings:
        line = f"{indent}{f.level:<{_LEVEL_WIDTH - 1}} {f.what}: {f.text}"
        lines += report.wrapped(line, width, indent=indent + " " * _LEVEL_WIDTH)
    return lines


def plan_text(reports: Sequence[TargetReport], live: Live, width: int) -> str:
    """``plan``'s output: the credentials, then each target's plan line with what upstream shows under it."""
    lines = finding_lines(live.credentials, width)
    by_target = {t.target: t for t in live.targets}
    for r in reports:
        # Details quote upstream messages (redacted), and name the target the line leads with.
        lines.append(f"{r.name}: {r.status}: {redact(said_of(r.name, r.detail))}")
        seen = by_target.get(r.name)  # none for a removed key: the journal is all it has
        if seen is not None:
            lines += finding_lines(seen.findings, width, indent="  ")
    return "\n".join(lines)


def status_text(live: Live, width: int) -> str:
    """``status --live``'s part after the journal's table."""
    lines = ["", f"upstream, as of {live.as_of}:", *finding_lines(live.credentials, width)]
    for t in live.targets:
        lines.append(f"{t.target}:")
        lines += finding_lines(t.findings, width, indent="  ")
    return "\n".join(lines)
