"""`rotator status` and `history` as people read them: days to expiry, revokes summarised, errors whole."""

import re

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, patch_by_hand


PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
#: RFC 3339 UTC to the second: the one time format people read.
RFC3339 = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
#: Anything that looks like a time of day after a date, whatever its spelling.
ANY_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d\S*")
#: Long enough to need wrapping at 60 columns, with a URL no wrap may cut.
LONG = (
    "the connection refused the credentials because the instance answered with a policy error;"
    " see https://gitlab.example.com/help/user/project/settings/project_access_tokens.md#token-expiry"
    " for the rules that apply to project access tokens on this instance"
)


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """A config for both example targets against the fakes, grace 1h."""
    return Harness(fakes, tmp_path)


def _row(stdout: str, target: str) -> dict[str, str]:
    """The table row of ``target``, cell by header (cells are split where the header's columns start)."""
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("TARGET"))
    starts = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    row = next(line for line in lines if line.startswith(f"{target} "))
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, cells, strict=True))


def test_expires_in_counts_whole_days_down_to_expired(h: Harness) -> None:
    """EXPIRES IN shows whole days left (as --json's expires_in_days), then `<1d`, then `expired`."""
    assert h.run("run-once").code == 0
    data = h.run("status", "--json").json()["targets"][0]
    assert data["expires_in_days"] >= 1
    assert _row(h.run("status").stdout, "app-deploy")["EXPIRES IN"] == f"{data['expires_in_days']}d"
    # Measured from the token's death (00:00 UTC on expires_at), not from now: an advance of
    # whole days from a time of day after 23:00 would already be past it.
    dies = datetime.combine(date.fromisoformat(data["expires_at"][:10]), time(0), UTC)
    h.fakes.clock.set(dies - timedelta(hours=12))
    assert h.run("status", "--json").json()["targets"][0]["expires_in_days"] == 0
    assert _row(h.run("status").stdout, "app-deploy")["EXPIRES IN"] == "<1d"
    h.fakes.clock.set(dies + timedelta(hours=1))
    assert _row(h.run("status").stdout, "app-deploy")["EXPIRES IN"] == "expired"


def test_pending_revokes_are_summarised_with_the_detail_in_json(h: Harness) -> None:
    """PENDING REVOKE says how many and when the next is due; --json lists each token."""
    assert h.run("run-once").code == 0
    h.fakes.clock.advance(timedelta(minutes=61))
    assert h.run("run-once").code == 0  # the adopted tokens revoked
    assert h.run("rotate", "app-deploy").code == 0
    pending = h.run("status", "--json").json()["targets"][0]["pending_revokes"]
    [token] = pending
    assert RFC3339.fullmatch(token["revoke_after"])
    cell = _row(h.run("status").stdout, "app-deploy")["PENDING REVOKE"]
    assert cell == f"1, next {token['revoke_after']}"
    assert _row(h.run("status").stdout, "api-deploy")["PENDING REVOKE"] == "-"


def test_a_long_error_is_wrapped_at_word_boundaries_never_cut(h: Harness) -> None:
    """A failure's error is wrapped to COLUMNS below the table; every word, the URL too, stays whole."""
    assert h.run("run-once").code == 0
    h.fakes.infisical.faults.fail(PATCH, 400, body={"message": LONG})
    assert h.run("rotate", "app-deploy").code == 1
    h.fakes.infisical.faults.clear()
    result = h.run("status", extra_env={"COLUMNS": "60"})
    assert result.code == 1
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("app-deploy: failing:"))
    said = [lines[first]] + [line for line in lines[first + 1 :] if line.startswith("  ")]
    assert len(said) > 2, "wrapped onto several lines"
    url = next(word for word in LONG.split() if word.startswith("https://"))
    assert all(len(line) <= 60 or url in line for line in said)
    assert " ".join(" ".join(said).split()).endswith(LONG), "nothing cut or lost"
    assert "target=app-deploy" not in result.stdout, "the line names its target once"


def test_a_drift_hint_names_the_target_to_paste(h: Harness, infisical: httpx.Client) -> None:
    """The drift hint is `rotator rotate app-deploy --take-over`, whole on one line, not `NAME`."""
    assert h.run("run-once").code == 0
    other = h.fakes.gitlab.test_only_token(h.active_tokens(0)[-1])
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    h.fakes.clock.advance(timedelta(minutes=61))
    ran = h.run("run-once")
    assert ran.code == 1
    assert "`rotator rotate app-deploy --take-over`" in ran.stdout
    status = h.run("status", extra_env={"COLUMNS": "40"})
    assert any("`rotator rotate app-deploy --take-over`" in line for line in status.stdout.splitlines())
    assert "NAME" not in ran.stdout + status.stdout


def test_a_failing_target_keeps_its_last_error_in_the_table(h: Harness, infisical: httpx.Client) -> None:
    """Frozen by drift: the failing line says what to run, the last error what was found (both hashes)."""
    assert h.run("run-once").code == 0
    other = h.fakes.gitlab.test_only_token(h.active_tokens(0)[-1])
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], other.value).status_code == 200
    h.fakes.clock.advance(timedelta(minutes=61))
    assert h.run("run-once").code == 1
    drift = h.run("status", "--json").json()["targets"][0]["drift"]
    shown = " ".join(h.run("status").stdout.split())
    assert "app-deploy: failing: frozen by drift since" in shown
    assert f"app-deploy: last error: drift: the connection holds {drift['observed']}" in shown
    assert drift["expected"] in shown


def test_status_history_and_plan_show_one_time_format(h: Harness) -> None:
    """Every time people read in status, history and plan is RFC 3339 UTC to the second."""
    assert h.run("run-once").code == 0
    h.fakes.clock.advance(timedelta(minutes=61))
    assert h.run("run-once").code == 0
    assert h.run("rotate", "app-deploy").code == 0
    shown = [h.run(*command).stdout for command in (("status",), ("history",), ("plan",))]
    for text in shown:
        times = ANY_TIME.findall(text)
        assert times, text
        assert all(RFC3339.fullmatch(t.rstrip(",;:)")) for t in times), times
    as_of = h.run("status", "--json").json()["as_of"]
    assert RFC3339.fullmatch(as_of)


def test_a_failed_run_names_its_target_once(h: Harness) -> None:
    """`app-deploy: failed: ...` does not go on to say `target=app-deploy` again."""
    assert h.run("run-once").code == 0
    h.fakes.infisical.faults.fail(PATCH, 400, body={"message": "refused"})
    result = h.run("rotate", "app-deploy")
    assert result.code == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("app-deploy: failed:")]
    assert line.count("app-deploy") == 1, line
    assert "step=push" in line


def test_history_wraps_an_error_below_its_row(h: Harness) -> None:
    """History puts a failed rotation's error under its row, wrapped whole, not cut at a column."""
    assert h.run("run-once").code == 0
    h.fakes.infisical.faults.fail(PATCH, 400, body={"message": LONG})
    assert h.run("rotate", "app-deploy").code == 1
    lines = h.run("history", extra_env={"COLUMNS": "70"}).stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  error: "))
    said = [lines[first]] + [line for line in lines[first + 1 :] if line.startswith("    ")]
    assert " ".join(" ".join(said).split()).endswith(LONG)
    url = next(word for word in LONG.split() if word.startswith("https://"))
    assert all(len(line) <= 70 or url in line for line in said)
