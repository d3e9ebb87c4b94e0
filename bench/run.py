"""Performance figures for rotator, against the fakes on loopback (issue #8).

Run: ``python bench/run.py`` (every figure, several minutes), ``python bench/run.py --quick`` (calls
per rotation only, a few seconds; exits 1 above the target of 6), ``--only NAME`` (one of
``calls``, ``fleet``, ``limiter``, ``run-once``, ``daemon``, ``journal``), ``--runs N`` (samples per
figure; each figure is the median with min and max) and ``--json PATH`` (default
``build/bench.json``). Progress goes to stderr, the table to stdout.

The fakes run in this process (threads), as do the in-process rotations of the ``calls``,
``fleet``, ``limiter`` and ``journal`` figures; ``run-once`` and ``daemon`` run the real command as
a subprocess. Latency is added only to the routes rotator calls, not to the fake Infisical's own
validation hop (``GET /api/v4/user``, User-Agent ``infisical-gitbeaker``), which is reported apart.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from rotator.doors import wiring
from rotator.engine.run import RunOptions
from rotator.testing import Fakes, start_fakes
from rotator.testing.gitlab import FakeGitLab


UA = "rotator/"
#: The fake Infisical's validation call to GitLab on each PATCH; not a call rotator makes.
VALIDATION_HOP = "GET /api/v4/user"
INFISICAL_AUTH = ("POST /api/v1/auth/universal-auth/login", "POST /api/v1/auth/token/renew")
MUTATING = (
    "POST /api/v4/projects/:id/access_tokens",
    "PATCH /api/v1/app-connections/gitlab/:connectionId",
    "DELETE /api/v4/projects/:id/access_tokens/:token_id",
)
FLOOR = len(MUTATING)
TARGET_CALLS = 6
TARGET_FLEET_RATIO = 1.25
TARGET_RUN_ONCE_S = 1.0
TARGET_RSS_MB = 80.0
TARGET_CPU_PCT = 1.0
LATENCY_S = 0.020
#: High enough never to bind in the throughput figure.
UNLIMITED = 1_000_000
PHASES = ("calls", "fleet", "limiter", "run-once", "daemon", "journal")
#: CPU seconds per half-second sample under which the daemon counts as settled (1% of a core).
QUIET_CPU_S = 0.005
CLK_TCK = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    """One progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``samples`` (rounded for the report)."""
    return {
        "median": round(statistics.median(samples), 4),
        "min": round(min(samples), 4),
        "max": round(max(samples), 4),
        "n": len(samples),
    }


def quiet_logs() -> None:
    """Rotator's structured logs at WARNING only, so in-process runs do not flood the terminal."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@dataclass
class Fleet:
    """Targets seeded in the fakes, and a folder for configs and state files."""

    fakes: Fakes
    folder: Path
    manager_token: str
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    adopted: set[str] = field(default_factory=set)

    def seed(self, group_name: str, count: int) -> list[dict[str, Any]]:
        """``count`` projects under a new group, each with a token held by one connection."""
        gitlab, infisical = self.fakes.gitlab, self.fakes.infisical
        manager = _manager(gitlab)
        group = gitlab.seed_resource("group", group_name)
        targets = []
        for index in range(count):
            project = gitlab.seed_resource("project", f"{group_name}/p{index}", parent=group)
            gitlab.seed_member(project, manager, 40)
            held = gitlab.seed_resource_token(project, f"p{index}-deploy", ["api"], days=30)
            connection_id = str(uuid.uuid4())
            infisical.seed_connection(
                held.value, instance_url=gitlab.url, name=f"{group_name}-{index}", connection_id=connection_id
            )
            targets.append(
                {
                    "name": f"p{index}-deploy",
                    "project": project.path,
                    "connection_id": connection_id,
                    "adopt_token_id": held.id,
                }
            )
        self.groups[group_name] = targets
        return targets

    def write_config(self, group_name: str, *, concurrency: int = 4, limits: bool = False) -> Path:
        """The group's config (grace 0, one state file per group); ``limits`` keeps rotator's defaults."""
        seed = self.fakes.seed
        gitlab: dict[str, Any] = {"url": seed.gitlab_url, "timeout": "30s"}
        infisical: dict[str, Any] = {"url": seed.infisical_url, "timeout": "30s"}
        if not limits:
            gitlab.update(requests_per_minute=UNLIMITED)
            infisical.update(reads_per_minute=UNLIMITED, writes_per_minute=UNLIMITED)
        config = {
            "gitlab": gitlab,
            "infisical": infisical,
            "state": {"url": f"sqlite:///state-{group_name}.db"},
            "daemon": {"listen": "127.0.0.1:0"},
            "max_concurrent_rotations": concurrency,
            "defaults": {"grace": "0s", "token": {"scopes": ["api"], "lifetime": "30d"}},
            "targets": self.groups[group_name],
        }
        path = self.folder / f"{group_name}-c{concurrency}{'-limited' if limits else ''}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def environment(self) -> dict[str, str]:
        """The variables rotator reads, for the bench manager; no clock offset (force, or nothing due)."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
            **self.fakes.seed.environment(),
            "ROTATOR_GITLAB_TOKEN": self.manager_token,
        }

    def run(self, config: Path, *, force: bool = True) -> float:
        """One in-process ``run-once`` (forced by default); its wall time. Fails loudly on any failure."""
        env = self.environment()
        rt = wiring.build(wiring.load(str(config), env), env)
        try:
            started = time.perf_counter()
            reports = rt.engine.run(RunOptions(force=force))
            elapsed = time.perf_counter() - started
        finally:
            rt.close()
        failed = [r for r in reports if r.failed]
        if failed:
            msg = f"{len(failed)} target(s) failed, first: {failed[0].name}: {failed[0].detail}"
            raise RuntimeError(msg)
        return elapsed

    def adopt(self, group_name: str) -> None:
        """Rotate the group once (adoption), without latency, if not done yet."""
        if group_name in self.adopted:
            return
        progress(f"adopting {len(self.groups[group_name])} target(s) of {group_name}")
        self.run(self.write_config(group_name, concurrency=16))
        self.adopted.add(group_name)


def _manager(gitlab: FakeGitLab) -> Any:  # noqa: ANN401 - the fake's User record
    existing = getattr(gitlab, "_bench_manager", None)
    if existing is None:
        existing = gitlab.seed_user("bench-manager")
        gitlab._bench_manager = existing  # type: ignore[attr-defined]  # noqa: SLF001 - a bench-only memo
    return existing


@contextlib.contextmanager
def fleet_fakes() -> Iterator[Fleet]:
    """Fakes (rate limits off, as they are by default) with a bench manager and a temporary folder."""
    with start_fakes() as fakes, tempfile.TemporaryDirectory(prefix="rotator-bench-") as folder:
        manager = _manager(fakes.gitlab)
        token = fakes.gitlab.seed_personal_token(manager, ["api"], name="bench-manager")
        yield Fleet(fakes, Path(folder), token.value)


def counts(fakes: Fakes) -> dict[str, dict[str, int]]:
    """Rotator's requests per upstream and route since the last reset."""
    return {
        "gitlab": fakes.gitlab.call_counts(user_agent=UA),
        "infisical": fakes.infisical.call_counts(user_agent=UA),
    }


def reset(fakes: Fakes) -> None:
    """Forget counted calls on both fakes."""
    fakes.gitlab.reset_calls()
    fakes.infisical.reset_calls()


def set_latency(fakes: Fakes, seconds: float) -> None:
    """Add ``seconds`` to every route rotator calls, on both fakes (not to the validation hop)."""
    for server in (fakes.gitlab, fakes.infisical):
        for route in server.route_names:
            if route != VALIDATION_HOP:
                server.faults.set_latency(route, seconds)


# ---- figure 1: upstream calls per rotation ------------------------------------------------------


def bench_calls(cycles: int, targets: int = 2) -> dict[str, Any]:
    """Cycle 1 (adoption) and ``cycles - 1`` steady-state forced rotations of ``targets`` targets."""
    progress(f"calls: {cycles} cycle(s) of {targets} target(s), grace 0")
    with fleet_fakes() as fleet:
        fleet.seed("calls", targets)
        config = fleet.write_config("calls")
        env = fleet.environment()
        rt = wiring.build(wiring.load(str(config), env), env)  # one process: the login is amortised
        per_cycle: list[dict[str, Any]] = []
        try:
            for cycle in range(cycles):
                reset(fleet.fakes)
                reports = rt.engine.run(RunOptions(force=True))
                if any(r.failed for r in reports):
                    msg = f"cycle {cycle + 1}: {[r.detail for r in reports if r.failed]}"
                    raise RuntimeError(msg)
                seen = counts(fleet.fakes)
                auth = sum(seen["infisical"].get(route, 0) for route in INFISICAL_AUTH)
                total = sum(sum(routes.values()) for routes in seen.values())
                mutating = sum(seen["gitlab"].get(r, 0) + seen["infisical"].get(r, 0) for r in MUTATING)
                hops = fleet.fakes.gitlab.call_counts().get(VALIDATION_HOP, 0)
                per_cycle.append(
                    {
                        "cycle": cycle + 1,
                        "routes": {
                            up: {r: n / targets for r, n in sorted(rs.items())} for up, rs in seen.items()
                        },
                        "calls_per_rotation": (total - auth) / targets,
                        "auth_calls": auth,
                        "mutating_per_rotation": mutating / targets,
                        "validation_hops_per_rotation": hops / targets,
                    }
                )
        finally:
            rt.close()
    steady = [c["calls_per_rotation"] for c in per_cycle[1:]] or [per_cycle[0]["calls_per_rotation"]]
    first = per_cycle[0]["calls_per_rotation"]
    steady_summary = summary(steady)
    return {
        "targets": targets,
        "first_cycle": first,
        "steady": steady_summary,
        "floor": FLOOR,
        "ratio_to_floor": round(steady_summary["median"] / FLOOR, 3),
        "target": TARGET_CALLS,
        "met": steady_summary["max"] <= TARGET_CALLS,
        "cycles": per_cycle,
    }


# ---- figure 2: fleet rotation time --------------------------------------------------------------


def bench_fleet(runs: int, sizes: Sequence[int], concurrencies: Sequence[int]) -> dict[str, Any]:
    """Forced steady-state runs of each fleet size at each concurrency, 20 ms per upstream call."""
    rows = []
    with fleet_fakes() as fleet:
        for size in sizes:
            name = f"fleet{size}"
            fleet.seed(name, size)
            fleet.adopt(name)
            reset(fleet.fakes)
            fleet.run(fleet.write_config(name, concurrency=16))  # one steady cycle, to count calls
            seen = counts(fleet.fakes)
            calls = sum(sum(r.values()) for r in seen.values()) / size
            set_latency(fleet.fakes, LATENCY_S)
            try:
                for concurrency in concurrencies:
                    config = fleet.write_config(name, concurrency=concurrency)
                    limit = calls * LATENCY_S * math.ceil(size / concurrency)
                    samples = []
                    for run in range(runs):
                        progress(f"fleet: {size} targets, concurrency {concurrency}, run {run + 1}/{runs}")
                        reset(fleet.fakes)
                        samples.append(fleet.run(config))
                        done = counts(fleet.fakes)
                    wall = summary(samples)
                    rate = {up: sum(r.values()) / wall["median"] * 60 for up, r in done.items()}
                    rows.append(
                        {
                            "targets": size,
                            "concurrency": concurrency,
                            "calls_per_rotation": calls,
                            "critical_path_s": round(limit, 3),
                            "wall_s": wall,
                            "ratio": round(wall["median"] / limit, 3),
                            "ratio_min": round(wall["min"] / limit, 3),
                            "requests_per_minute": {k: round(v) for k, v in rate.items()},
                            "met": wall["median"] / limit <= TARGET_FLEET_RATIO,
                        }
                    )
            finally:
                set_latency(fleet.fakes, 0)
    return {"latency_s": LATENCY_S, "target_ratio": TARGET_FLEET_RATIO, "rows": rows}


# ---- figure 2b: the limiter holds rotator's default rates ---------------------------------------


def _sampler(fakes: Fakes, stop: threading.Event, out: list[tuple[float, int, int, int]]) -> None:
    get = "GET /api/v1/app-connections/gitlab/:connectionId"
    started = time.monotonic()
    while not stop.is_set():
        reads = len(fakes.infisical.calls(get, user_agent=UA))
        writes = len(fakes.infisical.calls(user_agent=UA)) - reads
        gitlab = len(fakes.gitlab.calls(user_agent=UA))
        out.append((time.monotonic() - started, reads, writes, gitlab))
        if stop.wait(0.05):
            break
    reads = len(fakes.infisical.calls(get, user_agent=UA))
    out.append(
        (
            time.monotonic() - started,
            reads,
            len(fakes.infisical.calls(user_agent=UA)) - reads,
            len(fakes.gitlab.calls(user_agent=UA)),
        )
    )


def _max_in_window(series: list[tuple[float, int]], window: float) -> int:
    best, start = 0, 0
    for t, n in series:
        while series[start][0] < t - window:
            start += 1
        # requests counted after the window's first sample: all arrived within at most ``window`` s
        base = series[start][1] if start else 0
        best = max(best, n - base)
    return best


def bench_limiter(targets: int = 35) -> dict[str, Any]:
    """Forced rotations of ``targets`` targets at rotator's default rates; achieved rate per window."""
    with fleet_fakes() as fleet:
        fleet.seed("limiter", targets)
        fleet.adopt("limiter")
        config = fleet.write_config("limiter", concurrency=4, limits=True)
        reset(fleet.fakes)
        progress(
            f"limiter: {targets} forced rotations at default rates"
            f" (needs {2 * targets} Infisical reads; the sliding window makes this last about 60 s)"
        )
        stop, series = threading.Event(), []  # type: ignore[var-annotated]
        sampler = threading.Thread(target=_sampler, args=(fleet.fakes, stop, series), daemon=True)
        sampler.start()
        try:
            wall = fleet.run(config)
        finally:
            stop.set()
            sampler.join()
    reads = [(t, r) for t, r, _, _ in series]
    writes = [(t, w) for t, _, w, _ in series]
    gitlab = [(t, g) for t, _, _, g in series]
    return {
        "targets": targets,
        "wall_s": round(wall, 2),
        "infisical_reads": {
            "total": reads[-1][1],
            "limit_per_minute": 60,
            "max_in_any_60s": _max_in_window(reads, 60.0),
            "max_in_any_1s": _max_in_window(reads, 1.0),
        },
        "infisical_writes": {
            "total": writes[-1][1],
            "limit_per_minute": 200,
            "max_in_any_60s": _max_in_window(writes, 60.0),
        },
        "gitlab": {
            "total": gitlab[-1][1],
            "limit_per_minute": 600,
            "max_in_any_60s": _max_in_window(gitlab, 60.0),
        },
        "met": _max_in_window(reads, 60.0) <= 60,  # noqa: PLR2004 - the default read limit
    }


# ---- figure 3: run-once with nothing due --------------------------------------------------------


def _rotator(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rotator", "--config", str(config), *args]


def bench_run_once(runs: int, sizes: Sequence[int]) -> dict[str, Any]:
    """Wall time of ``python -m rotator run-once`` from exec to exit, everything rotated once."""
    rows = []
    with fleet_fakes() as fleet:
        for size in sizes:
            name = f"once{size}"
            fleet.seed(name, size)
            fleet.adopt(name)
            config = fleet.write_config(name, concurrency=4, limits=True)
            samples, calls = [], 0
            for run in range(runs):
                progress(f"run-once: {size} target(s), nothing due, run {run + 1}/{runs}")
                reset(fleet.fakes)
                started = time.perf_counter()
                done = subprocess.run(  # noqa: S603 - our interpreter, our module
                    _rotator(config, "run-once"),
                    env=fleet.environment(),
                    capture_output=True,
                    check=False,
                    timeout=600,
                )
                samples.append(time.perf_counter() - started)
                calls = sum(sum(r.values()) for r in counts(fleet.fakes).values())
                if done.returncode != 0:
                    msg = f"run-once exited {done.returncode}: {done.stderr.decode()[-500:]}"
                    raise RuntimeError(msg)
            wall = summary(samples)
            rows.append(
                {
                    "targets": size,
                    "wall_s": wall,
                    "upstream_calls": calls,
                    "ratio": round(wall["median"] / TARGET_RUN_ONCE_S, 3),
                    "met": wall["median"] <= TARGET_RUN_ONCE_S,
                }
            )
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rotator", "--version"], check=True, capture_output=True)
        version = time.perf_counter() - started
    return {
        "target_s": TARGET_RUN_ONCE_S,
        "rows": rows,
        "python_startup_s": round(interpreter, 3),
        "rotator_version_s": round(version, 3),
    }


# ---- figure 4: idle daemon ----------------------------------------------------------------------


def _proc(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS in MB) of ``pid`` from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def bench_daemon(size: int, window: float) -> dict[str, Any]:
    """``rotator daemon`` with ``size`` targets all rotated: start-up, then ``window`` s of idling."""
    with fleet_fakes() as fleet:
        name = f"daemon{size}"
        fleet.seed(name, size)
        fleet.adopt(name)
        config = fleet.write_config(name, concurrency=4, limits=True)
        reset(fleet.fakes)
        progress(f"daemon: {size} targets, start-up then {window:.0f} s idle")
        log = (fleet.folder / "daemon.log").open("wb")
        started = time.perf_counter()
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            _rotator(config, "daemon"), env=fleet.environment(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            # Start-up: until CPU use stays under 1% of a core for 3 s in a row (the first pass done).
            last_cpu, quiet, settled_at, peak_startup_rss = 0.0, 0, None, 0.0
            while time.perf_counter() - started < 300:  # noqa: PLR2004 - give up after 5 min
                time.sleep(0.5)
                if proc.poll() is not None:
                    msg = f"daemon exited {proc.returncode}; see its log"
                    raise RuntimeError(msg)
                cpu, rss = _proc(proc.pid)
                peak_startup_rss = max(peak_startup_rss, rss)
                quiet = quiet + 1 if cpu - last_cpu < QUIET_CPU_S else 0
                last_cpu = cpu
                if quiet >= 6:  # noqa: PLR2004 - 3 s
                    settled_at = time.perf_counter() - started - 3.0
                    break
            startup_cpu, startup_rss = _proc(proc.pid)
            startup_calls = sum(sum(r.values()) for r in counts(fleet.fakes).values())
            reset(fleet.fakes)
            progress(f"daemon: settled after {settled_at or -1:.1f} s; measuring {window:.0f} s")
            begin = time.perf_counter()
            rss_samples = []
            while time.perf_counter() - begin < window:
                time.sleep(1.0)
                rss_samples.append(_proc(proc.pid)[1])
            end_cpu, end_rss = _proc(proc.pid)
            elapsed = time.perf_counter() - begin
            idle_calls = sum(sum(r.values()) for r in counts(fleet.fakes).values())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    cpu_pct = (end_cpu - startup_cpu) / elapsed * 100
    rss_mb = summary(rss_samples)
    return {
        "targets": size,
        "startup": {
            "settled_s": None if settled_at is None else round(settled_at, 2),
            "cpu_s": round(startup_cpu, 2),
            "rss_mb": round(startup_rss, 1),
            "peak_rss_mb": round(peak_startup_rss, 1),
            "upstream_calls": startup_calls,
        },
        "idle": {
            "window_s": round(elapsed, 1),
            "cpu_pct_of_core": round(cpu_pct, 3),
            "rss_mb": rss_mb,
            "end_rss_mb": round(end_rss, 1),
            "upstream_calls": idle_calls,
        },
        "target_rss_mb": TARGET_RSS_MB,
        "target_cpu_pct": TARGET_CPU_PCT,
        "met": rss_mb["max"] <= TARGET_RSS_MB and cpu_pct < TARGET_CPU_PCT,
    }


# ---- figure 5: journal growth -------------------------------------------------------------------


def bench_journal(rotations: int, runs: int, targets: int = 50) -> dict[str, Any]:
    """Real forced rotations at zero latency until ``rotations`` are recorded; then time ``status``."""
    cycles = math.ceil(rotations / targets)
    with fleet_fakes() as fleet:
        name = "journal"
        fleet.seed(name, targets)
        config = fleet.write_config(name, concurrency=8)
        state = fleet.folder / f"state-{name}.db"
        env = fleet.environment()
        rt = wiring.build(wiring.load(str(config), env), env)  # one process, as the daemon would be
        started = time.perf_counter()
        sizes = []
        try:
            for cycle in range(cycles):  # the first is the adoption: rotation 1 of each target
                reports = rt.engine.run(RunOptions(force=True))
                if any(r.failed for r in reports):
                    msg = f"journal cycle {cycle + 1}: {[r.detail for r in reports if r.failed][:1]}"
                    raise RuntimeError(msg)
                if (cycle + 1) % max(1, cycles // 10) == 0:
                    done = (cycle + 1) * targets
                    sizes.append({"rotations": done, "bytes": _db_size(state)})
                    progress(
                        f"journal: {done}/{cycles * targets} rotations, state {_db_size(state) / 1e6:.1f} MB"
                    )
        finally:
            rt.close()
        recording = time.perf_counter() - started
        size = _db_size(state)
        samples = []
        for run in range(runs):
            progress(f"journal: status at {cycles * targets} rotations, run {run + 1}/{runs}")
            begin = time.perf_counter()
            subprocess.run(  # noqa: S603 - our interpreter, our module
                _rotator(config, "status"), env=fleet.environment(), capture_output=True, check=True
            )
            samples.append(time.perf_counter() - begin)
        history = []
        for _ in range(runs):
            begin = time.perf_counter()
            subprocess.run(  # noqa: S603 - our interpreter, our module
                _rotator(config, "history"), env=fleet.environment(), capture_output=True, check=True
            )
            history.append(time.perf_counter() - begin)
    return {
        "method": f"real forced rotations against the fakes, zero latency, {targets} targets x {cycles} runs",
        "rotations": cycles * targets,
        "recording_s": round(recording, 1),
        "state_bytes": size,
        "bytes_per_rotation": round(size / (cycles * targets)),
        "growth": sizes,
        "status_s": summary(samples),
        "history_s": summary(history),
    }


def _db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# ---- the table ----------------------------------------------------------------------------------


def _mmm(s: dict[str, float], unit: str = "", scale: float = 1.0) -> str:
    return f"{s['median'] * scale:.3g}{unit} ({s['min'] * scale:.3g}-{s['max'] * scale:.3g})"


def table(results: dict[str, Any]) -> str:
    """Figure | value (median, min-max) | target | ratio | met."""
    rows: list[tuple[str, str, str, str, str]] = []
    if "calls" in results:
        c = results["calls"]
        rows.append(("1. calls/rotation, first cycle (adoption)", f"{c['first_cycle']:g}", "-", "-", "-"))
        rows.append(
            (
                "1. calls/rotation, steady state",
                _mmm(c["steady"]),
                f"<= {TARGET_CALLS}",
                f"{c['ratio_to_floor']:.2f}x floor {FLOOR}",
                _yes(c["met"]),
            )
        )
    if "fleet" in results:
        rows.extend(
            (
                f"2. fleet {r['targets']} targets, concurrency {r['concurrency']}, 20 ms/call",
                _mmm(r["wall_s"], " s"),
                f"<= {TARGET_FLEET_RATIO}x {r['critical_path_s']:.3g} s",
                f"{r['ratio']:.2f}x",
                _yes(r["met"]),
            )
            for r in results["fleet"]["rows"]
        )
    if "limiter" in results:
        lim = results["limiter"]
        reads = lim["infisical_reads"]
        rows.append(
            (
                "2b. Infisical reads in any 60 s (default limit)",
                f"{reads['max_in_any_60s']} of {reads['total']} in {lim['wall_s']:.0f} s",
                "<= 60",
                f"{reads['max_in_any_60s'] / 60:.2f}x",
                _yes(lim["met"]),
            )
        )
    if "run-once" in results:
        rows.extend(
            (
                f"3. run-once, nothing due, {r['targets']} target(s)",
                _mmm(r["wall_s"], " s"),
                f"<= {TARGET_RUN_ONCE_S} s",
                f"{r['ratio']:.2f}x",
                _yes(r["met"]),
            )
            for r in results["run-once"]["rows"]
        )
    if "daemon" in results:
        d = results["daemon"]
        idle = d["idle"]
        rows.append(
            (
                f"4. idle daemon {d['targets']} targets, RSS",
                _mmm(idle["rss_mb"], " MB"),
                f"<= {TARGET_RSS_MB:g} MB",
                f"{idle['rss_mb']['max'] / TARGET_RSS_MB:.2f}x",
                _yes(idle["rss_mb"]["max"] <= TARGET_RSS_MB),
            )
        )
        rows.append(
            (
                f"4. idle daemon, CPU over {idle['window_s']:.0f} s",
                f"{idle['cpu_pct_of_core']:.2f}% of a core",
                f"< {TARGET_CPU_PCT:g}%",
                f"{idle['cpu_pct_of_core'] / TARGET_CPU_PCT:.2f}x",
                _yes(idle["cpu_pct_of_core"] < TARGET_CPU_PCT),
            )
        )
        s = d["startup"]
        rows.append(
            (
                "4. daemon start-up (first pass settled)",
                f"{s['settled_s']} s, {s['cpu_s']} CPU s, {s['peak_rss_mb']} MB",
                "-",
                "-",
                "-",
            )
        )
    if "journal" in results:
        j = results["journal"]
        rows.append(
            (
                f"5. state file after {j['rotations']} rotations",
                f"{j['state_bytes'] / 1e6:.2f} MB ({j['bytes_per_rotation']} B/rotation)",
                "-",
                "-",
                "-",
            )
        )
        rows.append(
            (f"5. rotator status at {j['rotations']} rotations", _mmm(j["status_s"], " s"), "-", "-", "-")
        )
        rows.append(
            (f"5. rotator history at {j['rotations']} rotations", _mmm(j["history_s"], " s"), "-", "-", "-")
        )
    head = ("figure", "median (min-max)", "target", "ratio", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _yes(met: bool) -> str:  # noqa: FBT001 - a verdict
    return "yes" if met else "NO"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected figures, print the table, write the JSON; 1 if --quick misses its target."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="figure 1 only, a few cycles (the CI step)")
    parser.add_argument("--only", choices=PHASES, action="append", help="run only this figure (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="samples per figure (default 3)")
    parser.add_argument("--json", type=Path, default=Path("build/bench.json"), help="where to write JSON")
    parser.add_argument("--fleet-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--daemon-window", type=float, default=60.0, help="idle seconds measured")
    parser.add_argument("--large", type=int, default=1000, help="targets for run-once and daemon")
    parser.add_argument("--journal-rotations", type=int, default=10_000)
    args = parser.parse_args(argv)
    quiet_logs()
    phases: Sequence[str] = ("calls",) if args.quick else (args.only or PHASES)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "calls": lambda: bench_calls(cycles=3 if args.quick else max(args.runs, 2) + 1),
        "fleet": lambda: bench_fleet(args.runs, args.fleet_sizes, args.concurrency),
        "limiter": bench_limiter,
        "run-once": lambda: bench_run_once(args.runs, [1, args.large]),
        "daemon": lambda: bench_daemon(args.large, args.daemon_window),
        "journal": lambda: bench_journal(args.journal_rotations, args.runs),
    }
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    for phase in phases:
        progress(f"phase {phase}")
        begin = time.perf_counter()
        results[phase] = runners[phase]()
        results[phase]["phase_s"] = round(time.perf_counter() - begin, 1)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    print(f"\ntotal {results['total_s']} s; JSON: {args.json}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    if "calls" in results and not results["calls"]["met"]:
        print(f"calls per rotation above {TARGET_CALLS}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
