"""``ROTATOR_TEST_SLEEP_SCALE``: armed only with the fakes' proof, like the other test hooks."""

import time

from pathlib import Path

import pytest

from rotator.core.errors import ConfigError
from rotator.doors import wiring
from rotator.doors.config import Config
from rotator.doors.wiring import SLEEP_SCALE
from rotator.testing import Fakes
from tests.cli_harness import Harness


PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


def _config(h: Harness) -> Config:
    return wiring.load(str(h.folder / "rotator.yaml"), {})


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_the_sleep_scale_is_armed_with_the_fakes_proof(
    fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the key the fakes handed out, a 10 s wait sleeps 10 ms, and stderr says the hook is on."""
    h = Harness(fakes, tmp_path)
    env = {**fakes.seed.environment(), SLEEP_SCALE: "0.001"}
    wait = wiring.pace(_config(h), env).sleep
    slept = _recorded(monkeypatch)
    wait(10.0)
    assert slept == [pytest.approx(0.01)]
    assert f"test hook {SLEEP_SCALE}=0.001 is in effect" in capsys.readouterr().err


@pytest.mark.parametrize("key", [None, "not-the-key-these-fakes-made"])
def test_the_sleep_scale_is_ignored_without_the_fakes_proof(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str | None
) -> None:
    """No key, or a key the fakes never made: waits are real (``time.sleep``), with a line saying why."""
    h = Harness(fakes, tmp_path)
    env = {k: v for k, v in fakes.seed.environment().items() if k != "ROTATOR_TEST_HOOKS"}
    if key is not None:
        env["ROTATOR_TEST_HOOKS"] = key
    assert wiring.pace(_config(h), {**env, SLEEP_SCALE: "0.001"}).sleep is time.sleep
    err = capsys.readouterr().err
    assert f"ignoring {SLEEP_SCALE}: " in err
    assert "is in effect" not in err


def test_the_sleep_scale_is_ignored_off_loopback(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-loopback upstream: ignored before any proof is asked for, even with the right key."""
    h = Harness(fakes, tmp_path)
    h.write_config(urls=("https://gitlab.example.com", fakes.seed.infisical_url))
    env = {**fakes.seed.environment(), SLEEP_SCALE: "0.001"}
    assert wiring.pace(_config(h), env).sleep is time.sleep
    assert (
        f"ignoring {SLEEP_SCALE}: gitlab.url and infisical.url are not both loopback"
        in capsys.readouterr().err
    )


def test_no_sleep_scale_means_real_sleeps(
    fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unset or empty (how a harness test opts out): ``time.sleep`` and not a word on stderr."""
    h = Harness(fakes, tmp_path)
    for env in ({}, {SLEEP_SCALE: ""}):
        assert wiring.pace(_config(h), {**fakes.seed.environment(), **env}).sleep is time.sleep
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["-0.1", "1.5", "fast", "nan", "inf", "1e3"])
def test_a_malformed_sleep_scale_is_a_usage_error(fakes: Fakes, tmp_path: Path, value: str) -> None:
    """Not a number from 0 to 1: a ConfigError naming the variable (exit 2), armed or not."""
    h = Harness(fakes, tmp_path)
    with pytest.raises(ConfigError, match=SLEEP_SCALE):
        wiring.pace(_config(h), {SLEEP_SCALE: value})
    assert h.run("run-once", extra_env={SLEEP_SCALE: value}).code == 2  # a usage error


def test_a_429_retry_after_is_still_honoured_scaled(
    fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PATCH refused with Retry-After: 30 is retried and succeeds: the 30 s wait, scaled, took 30 ms."""
    h = Harness(fakes, tmp_path, targets=1)
    fakes.infisical.faults.fail(PATCH, 429, headers={"retry-after": "30"})
    real, slept = time.sleep, []

    def recording(seconds: float) -> None:
        slept.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", recording)
    started = time.monotonic()
    result = h.run("run-once")  # in this process, so the recorder sees rotator's sleeps
    assert result.code == 0, result.stderr
    assert time.monotonic() - started < 20  # far less than the 30 s asked for
    assert pytest.approx(0.03) in slept
    assert [c.status for c in fakes.infisical.calls(PATCH)] == [429, 200]
