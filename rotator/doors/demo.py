"""``rotator demo``: a full rotation cycle against the fakes, narrated, then proved from the outside.

Nothing leaves loopback and nothing is left behind: the fakes listen on free 127.0.0.1 ports, the
config and the journal live in a temporary folder removed at the end. The engine is the real one,
with the real adapters and the real SQLite journal; only its clock is the fakes' (so "wait out the
grace" is a jump of the fakes' clock, not an hour of the reader's time).

The proof at the end does not trust the engine's word: it asks the fake Infisical (through its
test-only view) which token the connection holds and the fake GitLab whether that token works,
then presents every retired token to GitLab over HTTP and expects 401.
"""

import tempfile

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import httpx

from rotator.adapters.logs import configure
from rotator.core.model import Change, Origin, Role, Step, short_hash
from rotator.core.ports import Alert
from rotator.doors import report, wiring
from rotator.doors.config import parse_config
from rotator.doors.outcome import Outcome
from rotator.engine.run import Engine, RunOptions
from rotator.testing import Fakes, start_fakes


GRACE = timedelta(hours=1)
_DEAD = 401  # what GitLab answers a revoked token
_STEP_WORDS = {
    Step.PLANNED: "planned  new token {name}",
    Step.CREATED: "created  token {new} at GitLab, expires {expires}",
    Step.PUSHING: "pushing  to the Infisical connection (hash before: {pre})",
    Step.PUSHED: "pushed   Infisical answered hash {patch}",
    Step.VERIFIED: "verified re-read hash {reread} = pushed, changed from {pre}",
}


class _Narrator:
    """An observer printing one line per recorded step and token change, per target."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen: set[tuple[str, str, str]] = set()

    def line(self, target: str, text: str) -> None:
        print(f"  {target:<11} {text}", file=self.out, flush=True)

    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        self.line(target, f"finished {outcome} in {seconds * 1000:.0f} ms")

    def alert(self, alert: Alert) -> None:
        self.line(alert.target, f"ALERT    {alert.reason}: {alert.message}")

    def recorded(self, target: str, change: Change) -> None:
        r = change.rotation
        if r is not None and (r.id, r.step.value, target) not in self.seen:
            self.seen.add((r.id, r.step.value, target))
            words = _STEP_WORDS[r.step].format(
                name=r.token_name,
                new=r.new_token_id,
                expires=r.expires_at,
                pre=short_hash(r.pre_hash),
                patch=short_hash(r.patch_hash),
                reread=short_hash(r.reread_hash),
            )
            self.line(target, words)
        for token in change.tokens:
            if token.origin is Origin.ADOPTED and (str(token.token_id), "adopted", target) not in self.seen:
                self.seen.add((str(token.token_id), "adopted", target))
                self.line(target, f"adopted  token {token.token_id}: the one the connection holds today")
            if (
                token.role is Role.PENDING_REVOKE
                and (str(token.token_id), "pending", target) not in self.seen
            ):
                self.seen.add((str(token.token_id), "pending", target))
                self.line(target, f"retired  token {token.token_id}: revoked once its grace has passed")
            if token.role is Role.REVOKED and (str(token.token_id), "revoked", target) not in self.seen:
                self.seen.add((str(token.token_id), "revoked", target))
                self.line(target, f"revoked  token {token.token_id} ({token.evidence})")


def _config(fakes: Fakes) -> dict[str, object]:
    seed = fakes.seed
    return {
        "gitlab": {"url": seed.gitlab_url},
        "infisical": {"url": seed.infisical_url},
        "state": {"url": "sqlite:///demo-state.db"},
        "max_concurrent_rotations": 1,  # one target after the other: a narration easy to follow
        "defaults": {"grace": "1h", "token": {"scopes": ["api"], "lifetime": "30d"}},
        "targets": [
            {
                "name": f"{path.rsplit('/', 1)[-1]}-deploy",
                "project": path,
                "connection_id": seed.connection_ids[i],
                "adopt_token_id": seed.adopt_token_ids[i],
            }
            for i, path in enumerate(seed.project_paths[:2])
        ],
    }


def run(out: TextIO) -> Outcome:
    """Run the demo, printing to ``out``: OK if every run succeeds and every proof holds."""
    configure(level=40)  # errors only on stderr: the narration is the output
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, start_fakes() as fakes:
        folder = Path(tmp)
        config = parse_config(_config(fakes), base_dir=folder)
        say: Callable[[str], None] = lambda text: print(text, file=out, flush=True)  # noqa: E731
        seed = fakes.seed
        say(f"rotator demo: fake GitLab at {seed.gitlab_url}, fake Infisical at {seed.infisical_url}")
        say(f"state in a temporary folder; targets {', '.join(t.name for t in config.targets)}")
        narrator = _Narrator(out)
        rt = wiring.build(config, fakes.seed.environment())
        engine = Engine(rt.engine.spec, replace(rt.engine.ctx, clock=fakes.clock.now, observer=narrator))
        try:
            steps = (
                ("1. first run: adopt the tokens the connections hold, rotate, verify", RunOptions()),
                (
                    "2. an hour later (the fakes' clock): the grace has passed, revoke the adopted tokens",
                    RunOptions(),
                ),
                ("3. a forced second rotation (rotator rotate NAME)", RunOptions(force=True)),
                ("4. another hour later: revoke the tokens the second rotation retired", RunOptions()),
            )
            for number, (title, options) in enumerate(steps):
                if number in {1, 3}:
                    fakes.clock.advance(GRACE + timedelta(minutes=1))
                say(f"\n{title}")
                reports = engine.run(replace(options, trigger="demo"))
                if any(r.failed for r in reports):
                    for r in reports:
                        say(f"  {r.name}: {r.status}: {r.detail}")
                    return Outcome.FAILING
            say("")
            say(report.status_table(report.read_status(config, rt.journal, fakes.clock.now)))
            return _prove(fakes, rt, say)
        finally:
            rt.close()


def _prove(fakes: Fakes, rt: wiring.Runtime, say: Callable[[str], None]) -> Outcome:
    say("\nproof, asked of the fakes rather than of rotator:")
    ok = True
    with httpx.Client(base_url=fakes.seed.gitlab_url, timeout=10) as gitlab:
        for target in rt.engine.spec.targets:
            held = fakes.infisical.test_only_held_token(target.connection_id)
            works = fakes.gitlab.test_only_accepts(held)
            ok = ok and works
            say(f"  {target.name:<11} Infisical holds a token GitLab accepts: {'yes' if works else 'NO'}")
            key = rt.engine.key(target, resolve=False)
            retired = [t.token_id for t in rt.journal.tokens(key) if t.role is Role.REVOKED] if key else []
            answers = []
            for token_id in retired:
                value = fakes.gitlab.test_only_token(token_id).value
                status = gitlab.get("/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": value})
                answers.append(f"{token_id}->{status.status_code}")
                ok = ok and status.status_code == _DEAD
            say(f"  {target.name:<11} old tokens presented to GitLab: {', '.join(answers) or 'none'}")
            project = fakes.seed.project_ids[fakes.seed.connection_ids.index(target.connection_id)]
            active = fakes.gitlab.test_only_active_token_ids(project)
            alone = [fakes.gitlab.test_only_token(i).value for i in active] == [held]
            ok = ok and alone
            verdict = "only the held one" if alone else "NOT only the held one"
            say(f"  {target.name:<11} active tokens at GitLab: {active} ({verdict})")
    say(
        "\ndemo passed: rotated twice, old tokens dead, Infisical holds a live one" if ok else "\ndemo FAILED"
    )
    return Outcome.OK if ok else Outcome.DISPROVED
