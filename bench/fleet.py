"""Fleet time of 1, 2 and 3 ``rotator daemon`` replicas on one PostgreSQL journal (issue 17, item 6).

Run: ``python bench/fleet.py`` (1,000 targets, 3 repeats, about 25 min on 2 shared cores),
``python bench/fleet.py --quick`` (100 targets, 1 repeat, under a minute), ``--targets N``,
``--repeats N``, ``--replicas 1 2 3``, ``--no-sqlite``, ``--profile`` (one extra profiled run of one
replica; forced on in the full run), ``--json PATH`` (default ``build/fleet.json``).

The method (``docs/performance.md`` says more):

* The fakes run in their own process (``bench/fleet_fakes.py``), 20 ms added to every route rotator
  calls, their rate limits off; rotator's own limits are raised far above what the run needs.
* A fresh PostgreSQL database (``tests/postgres.py``'s server, ``ROTATOR_TEST_POSTGRES``), dropped
  afterwards. N targets are adopted once by ``rotator run-once`` without latency. Each measurement
  then starts R replicas (``bench/fleet_replica.py``: ``rotator daemon`` plus counters) with the
  test hook ``ROTATOR_TEST_CLOCK_OFFSET`` set 21 days further than the last, so that every target is
  due at once (tokens live 30 days, rotated 10 days before expiry), and polls the journal until
  every target has one more succeeded rotation; then it stops the replicas (SIGTERM).
* Fleet time is the journal's first PLANNED to its last finished rotation of the measurement; the
  replicas' start-up (spawn to first PLANNED) is reported beside it. CPU seconds are read from
  ``/proc/PID/stat`` for the replicas, the fakes process, and PostgreSQL (the run database's
  backends from ``pg_stat_activity`` plus the server's checkpointer, background writer, WAL writer
  and autovacuum launcher, shared with any other user of the server), sampled every 0.2 s.
* The limit is the larger of the critical path, calls x latency x ceil(N / (R x concurrency)), and
  the CPU floor, (replicas + fakes + PostgreSQL CPU seconds in the window) / cores.

Also one replica on SQLite, for comparison (its own targets, its own state file).
"""

import argparse
import contextlib
import json
import math
import os
import pstats
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg
import yaml

from run import INFISICAL_AUTH, LATENCY_S, TARGET_FLEET_RATIO, UNLIMITED, progress, summary


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.postgres import fresh_database  # noqa: E402 - the repository's root is on the path just above


CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
OFFSET_STEP_DAYS = 21  # tokens live 30 days and are due 10 days before expiry: 21 more makes all due
SAMPLE_S = 0.2
PG_AUX = ("checkpointer", "background writer", "walwriter", "autovacuum launcher")


def _cpu(pid: int) -> float | None:
    """CPU seconds (user + system) ``pid`` has used, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy() -> float:
    """CPU seconds every process on the machine has used (all cores), from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLK_TCK


class FakesProcess:
    """``fleet_fakes.py`` as a child process, spoken to in JSON lines."""

    def __init__(self) -> None:
        """Start it and read its URLs and variables."""
        self.proc = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, str(HERE / "fleet_fakes.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.gitlab_url, self.infisical_url = hello["gitlab_url"], hello["infisical_url"]
        self.env: dict[str, str] = hello["env"]  # secrets: passed to rotator, never printed

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None  # noqa: S101 - piped above
        line = self.proc.stdout.readline()
        if not line:
            msg = f"the fakes process exited ({self.proc.poll()})"
            raise RuntimeError(msg)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, op: str, **args: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON arguments
        """Send one command, return its answer."""
        assert self.proc.stdin is not None  # noqa: S101 - piped above
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Stop it."""
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None  # noqa: S101 - piped above
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Journal:
    """What the bench reads from a store: succeeded rotations so far, and the rotations since a time."""

    def __init__(self, url: str, path: Path | None) -> None:
        """PostgreSQL at ``url``, or the SQLite file ``path``."""
        self.pg = psycopg.connect(url, autocommit=True) if path is None else None
        self.db = path
        self.own_pid = self.pg.execute("SELECT pg_backend_pid()").fetchone()[0] if self.pg else None  # type: ignore[index]

    def succeeded(self) -> int:
        """Succeeded rotations recorded."""
        sql = "SELECT count(*) FROM rotations WHERE outcome = 'succeeded'"
        if self.pg is not None:
            return int(self.pg.execute(sql).fetchone()[0])  # type: ignore[index]
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as db:
            return int(db.execute(sql).fetchone()[0])

    def rotations(self) -> list[dict[str, Any]]:
        """Every rotation's record."""
        sql = "SELECT data FROM rotations"
        if self.pg is not None:
            return [row[0] for row in self.pg.execute(sql).fetchall()]
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as db:
            return [json.loads(row[0]) for row in db.execute(sql).fetchall()]

    def pg_pids(self, database: str) -> list[int]:
        """The run database's backends (not this reader's) and the server's background writers."""
        if self.pg is None:
            return []
        rows = self.pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = %s AND pid <> %s) OR backend_type = ANY(%s)",
            (database, self.own_pid, list(PG_AUX)),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def close(self) -> None:
        """Close the connection."""
        if self.pg is not None:
            self.pg.close()


@dataclass
class Store:
    """One journal under test, its targets and how far its clock offset has gone."""

    name: str  # postgresql | sqlite
    url: str
    targets: list[dict[str, Any]]
    folder: Path
    database: str = ""
    path: Path | None = None
    measured: int = 0
    configs: dict[int, Path] = field(default_factory=dict)

    def config(self, fakes: FakesProcess, concurrency: int) -> Path:
        """The config at ``concurrency`` (grace 0, limits out of the way), written once."""
        if concurrency not in self.configs:
            body = {
                "gitlab": {"url": fakes.gitlab_url, "timeout": "30s", "requests_per_minute": UNLIMITED},
                "infisical": {
                    "url": fakes.infisical_url,
                    "timeout": "30s",
                    "reads_per_minute": UNLIMITED,
                    "writes_per_minute": UNLIMITED,
                },
                "state": {"url": self.url},
                "daemon": {"listen": "127.0.0.1:0"},
                "max_concurrent_rotations": concurrency,
                # The bench measures rotations: the daemon's expiry watch (a daily listing of
                # every target's tokens, its first turn at start) would add N reads to the window.
                "watch": {"expiry_watch": False},
                "defaults": {"grace": "0s", "token": {"scopes": ["api"], "lifetime": "30d"}},
                "targets": self.targets,
            }
            path = self.folder / f"{self.name}-c{concurrency}.yaml"
            path.write_text(yaml.safe_dump(body))
            self.configs[concurrency] = path
        return self.configs[concurrency]


@dataclass
class Sample:
    """CPU seconds per process group, at one moment (wall clock)."""

    at: float
    replicas: float
    fakes: float
    postgres: float
    machine: float
    bench: float
    done: int


def _rotator_env(fakes: FakesProcess, offset_days: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
        **fakes.env,
        "ROTATOR_TEST_CLOCK_OFFSET": f"{offset_days}d",
    }


def adopt(store: Store, fakes: FakesProcess, folder: Path) -> float:
    """Rotate every target once (adoption, no latency) with ``rotator run-once``; its wall time."""
    progress(f"{store.name}: adopting {len(store.targets)} targets (run-once, no latency)")
    started = time.perf_counter()
    with (folder / f"adopt-{store.name}.log").open("wb") as log:
        done = subprocess.run(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "rotator", "--config", str(store.config(fakes, 16)), "run-once"],
            env={**_rotator_env(fakes, 0), "ROTATOR_TEST_CLOCK_OFFSET": "0s"},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        msg = f"adoption on {store.name} exited {done.returncode}; see {folder}/adopt-{store.name}.log"
        raise RuntimeError(msg)
    return time.perf_counter() - started


class Sampler:
    """CPU samples of every process of a measurement."""

    def __init__(self, replicas: list[int], fakes: int, journal: Journal, database: str) -> None:
        """Watch these."""
        self.replicas, self.fakes, self.journal, self.database = replicas, fakes, journal, database
        self.last: dict[int, float] = {}  # a gone process keeps its last reading

    def _sum(self, pids: Sequence[int]) -> float:
        for pid in pids:
            value = _cpu(pid)
            if value is not None:
                self.last[pid] = value
        return sum(self.last.get(pid, 0.0) for pid in pids)

    def take(self, done: int) -> Sample:
        """One sample."""
        pg = self.journal.pg_pids(self.database) if self.database else []
        self.pg_seen = sorted(set(getattr(self, "pg_seen", [])) | set(pg))
        return Sample(
            at=time.time(),
            replicas=self._sum(self.replicas),
            fakes=self._sum([self.fakes]),
            postgres=self._sum(self.pg_seen),
            machine=_machine_busy(),
            bench=self._sum([os.getpid()]),
            done=done,
        )


def _at(samples: list[Sample], when: float, *, after: bool) -> Sample:
    """The last sample at or before ``when``, or the first at or after it."""
    if after:
        return next((s for s in samples if s.at >= when), samples[-1])
    return next((s for s in reversed(samples) if s.at <= when), samples[0])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@dataclass
class Run:
    """What one measurement saw: when it spawned, its CPU samples, the fakes' counts, the replicas' stats."""

    tag: str
    spawned: float
    samples: list[Sample]
    seen: dict[str, Any]
    stats: list[dict[str, Any]]


def _run(  # noqa: PLR0913 - one measurement's knobs
    store: Store,
    fakes: FakesProcess,
    journal: Journal,
    *,
    replicas: int,
    concurrency: int,
    offset_days: int,
    folder: Path,
    profile: Path | None,
) -> Run:
    """Start the replicas, sample until every target has one more succeeded rotation, stop them."""
    n = len(store.targets)
    baseline = journal.succeeded()
    fakes.ask("reset")
    env = _rotator_env(fakes, offset_days)
    config = store.config(fakes, concurrency)
    tag = f"{store.name}-r{replicas}-m{store.measured}"
    logs: list[IO[bytes]] = []
    procs: list[subprocess.Popen[bytes]] = []
    spawned = time.time()
    try:
        for index in range(replicas):
            log = (folder / f"{tag}-{index}.log").open("wb")
            logs.append(log)
            stats = folder / f"{tag}-{index}.json"
            args = [sys.executable, str(HERE / "fleet_replica.py"), str(config), str(stats)]
            if profile is not None and index == 0:
                args.append(str(profile))
            procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
        sampler = Sampler([p.pid for p in procs], fakes.proc.pid, journal, store.database)
        samples = [sampler.take(0)]
        deadline = time.monotonic() + max(300.0, 20 * 6 * LATENCY_S * n)
        while True:
            time.sleep(SAMPLE_S)
            done = journal.succeeded() - baseline
            samples.append(sampler.take(done))
            if done >= n:
                break
            dead = [p.returncode for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                msg = f"{tag}: {done}/{n} rotated; replicas exited {dead}; see {folder}/{tag}-*.log"
                raise RuntimeError(msg)
        seen = fakes.ask("counts")
    finally:
        _stop(procs)
        for log in logs:
            log.close()
    stats = [json.loads((folder / f"{tag}-{i}.json").read_text()) for i in range(replicas)]
    return Run(tag, spawned, samples, seen, stats)


def measure(  # noqa: PLR0913 - one measurement's knobs
    store: Store,
    fakes: FakesProcess,
    *,
    replicas: int,
    concurrency: int,
    folder: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Start ``replicas`` daemons with every target due; wait until each has rotated once; figures."""
    store.measured += 1
    offset_days = OFFSET_STEP_DAYS * store.measured
    journal = Journal(store.url, store.path)
    try:
        run = _run(
            store,
            fakes,
            journal,
            replicas=replicas,
            concurrency=concurrency,
            offset_days=offset_days,
            folder=folder,
            profile=profile,
        )
        # This measurement's rotations: planned (in the replicas' shifted clock) after the spawn.
        shift = offset_days * 86400
        rotations = [
            r
            for r in journal.rotations()
            if r["trigger"] == "schedule" and _epoch(r["planned_at"]) - shift >= run.spawned - 60
        ]
    finally:
        journal.close()
    result = {
        "store": store.name,
        "replicas": replicas,
        "concurrency": concurrency,
        "targets": len(store.targets),
        "offset_days": offset_days,
        **figures(run, rotations, shift, len(store.targets), replicas * concurrency),
    }
    progress(
        f"{run.tag}: {result['fleet_s']:.2f} s (limit {result['limit_s']:.2f} s, {result['binding']};"
        f" ratio {result['ratio']:.2f}); rotator {result['cpu_ms_per_rotation']['rotator']} CPU ms/rotation;"
        f" busy {result['job_statuses'].get('busy', 0)}"
    )
    if not result["exactly_once"]:
        msg = f"{run.tag}: not exactly once per target: {result['outcomes']}"
        raise RuntimeError(msg)
    return result


def figures(run: Run, rotations: list[dict[str, Any]], shift: float, n: int, workers: int) -> dict[str, Any]:
    """The measurement's figures from its journal rows (times shifted back by ``shift``) and samples."""
    outcomes = Counter(r["outcome"] for r in rotations)
    keys = {json.dumps(r["key"], sort_keys=True) for r in rotations if r["outcome"] == "succeeded"}
    first = min(_epoch(r["planned_at"]) for r in rotations) - shift
    last = max(_epoch(r["finished_at"]) for r in rotations if r["finished_at"]) - shift
    start, end = _at(run.samples, first, after=False), _at(run.samples, last, after=True)
    cpu = {
        g: getattr(end, g) - getattr(start, g) for g in ("replicas", "fakes", "postgres", "machine", "bench")
    }
    span = end.at - start.at
    routes = run.seen["routes"]
    auth = sum(routes["infisical"].get(route, 0) for route in INFISICAL_AUTH)
    calls = (sum(sum(r.values()) for r in routes.values()) - auth) / n
    critical = calls * LATENCY_S * math.ceil(n / workers)
    ours = cpu["replicas"] + cpu["fakes"] + cpu["postgres"]
    others = max(0.0, cpu["machine"] - ours - cpu["bench"])
    # The cores the rest of the machine left this run, on average over the window.
    left = max(0.1, CORES - others / span) if span > 0 else float(CORES)
    limit = max(critical, ours / CORES)
    by_replica = Counter(r["actor"] for r in rotations if r["outcome"] == "succeeded")
    tails = [
        last - max(_epoch(r["finished_at"]) - shift for r in rotations if r["actor"] == actor)
        for actor in by_replica
    ]
    statuses: Counter[str] = Counter()
    for s in run.stats:
        statuses.update(s["statuses"])
    journal_s = sum(s["journal_s"] for s in run.stats)
    worker_s = sum(s["worker_s"] for s in run.stats)
    return {
        "rotated": outcomes.get("succeeded", 0),
        "distinct_targets_rotated": len(keys),
        "outcomes": dict(outcomes),
        "exactly_once": outcomes.get("succeeded", 0) == n == len(keys) and len(outcomes) == 1,
        "fleet_s": round(last - first, 3),
        "startup_s": round(first - run.spawned, 3),
        "spawn_to_done_s": round(run.samples[-1].at - run.spawned, 3),
        "calls_per_rotation": round(calls, 3),
        "validation_hops": run.seen["validation_hops"],
        "critical_path_s": round(critical, 3),
        "cpu_window_s": round(span, 3),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ms_per_rotation": {
            "rotator": round(cpu["replicas"] / n * 1000, 2),
            "fakes": round(cpu["fakes"] / n * 1000, 2),
            "postgres": round(cpu["postgres"] / n * 1000, 2),
            "others_on_machine": round(others / n * 1000, 2),
        },
        "cpu_floor_s": round(ours / CORES, 3),
        "limit_s": round(limit, 3),
        "binding": "critical path" if critical >= ours / CORES else "CPU floor",
        "ratio": round((last - first) / limit, 3),
        "ratio_to_critical_path": round((last - first) / critical, 3),
        "cores_left_by_others": round(left, 2),
        "ratio_load_adjusted": round((last - first) / max(critical, ours / left), 3),
        "rotations_by_replica": sorted(by_replica.values(), reverse=True),
        "idle_tail_s_by_replica": sorted(round(v, 3) for v in tails),
        "job_statuses": dict(statuses),
        "busy_per_rotation": round(statuses.get("busy", 0) / n, 3),
        "journal": {
            "seconds_per_rotation_ms": round(journal_s / n * 1000, 2),
            "share_of_worker_time": round(journal_s / worker_s, 3) if worker_s else None,
            "worker_cpu_ms_per_rotation": round(sum(s["worker_cpu_s"] for s in run.stats) / n * 1000, 2),
            # The journal calls' own CPU (client side: psycopg, the codec), which load does not inflate.
            "cpu_ms_per_rotation": round(sum(s.get("journal_cpu_s", 0.0) for s in run.stats) / n * 1000, 2),
            "statements_per_rotation": round(sum(s["statements"] for s in run.stats) / n, 2),
            # Each transaction adds two round trips (BEGIN, COMMIT) to its statements; a pipeline's
            # statements share one.
            "round_trips_per_rotation": round(
                sum(
                    s["statements"]
                    + 2 * s.get("transactions", 0)
                    - s.get("pipelined", 0)
                    + s.get("pipelines", 0)
                    for s in run.stats
                )
                / n,
                2,
            ),
            "statement_kinds_per_rotation": _merge_kinds(run.stats, n),
            "calls": _merge_calls(run.stats, n),
        },
    }


def _merge_kinds(stats: list[dict[str, Any]], n: int) -> dict[str, float]:
    merged: Counter[str] = Counter()
    for s in stats:
        merged.update(s.get("statement_kinds", {}))
    merged["BEGIN ... COMMIT (transactions)"] = sum(int(s.get("transactions", 0)) for s in stats)
    return {kind: round(count / n, 2) for kind, count in merged.most_common()}


def _merge_calls(stats: list[dict[str, Any]], n: int) -> dict[str, dict[str, float]]:
    merged: dict[str, list[float]] = {}
    for s in stats:
        for method, entry in s["journal"].items():
            into = merged.setdefault(method, [0, 0.0])
            into[0] += entry["calls"]
            into[1] += entry["seconds"]
    return {
        m: {"per_rotation": round(c / n, 2), "ms_each": round(sec / c * 1000, 3) if c else 0.0}
        for m, (c, sec) in sorted(merged.items(), key=lambda kv: -kv[1][1])
    }


# ---- the profile --------------------------------------------------------------------------------

GROUPS = (
    ("journal: psycopg", ("psycopg",)),
    ("journal: rotator.journal", ("rotator/journal",)),
    ("sqlite3", ("sqlite3",)),
    ("HTTP: httpx/httpcore/h11", ("httpx", "httpcore", "h11")),
    ("HTTP: python-gitlab/requests/urllib3", ("gitlab/", "requests", "urllib3")),
    ("logging: structlog", ("structlog",)),
    ("retries: tenacity", ("tenacity",)),
    ("scheduler: APScheduler", ("apscheduler",)),
    ("config: pydantic", ("pydantic",)),
    ("rotator: engine", ("rotator/engine",)),
    ("rotator: core", ("rotator/core",)),
    ("rotator: adapters", ("rotator/adapters",)),
    ("rotator: doors (daemon)", ("rotator/doors",)),
    ("bench: counters", ("fleet_replica",)),
)
#: How far up its callers the own time of a standard-library function or a builtin is followed.
_CALLER_DEPTH = 12
Func = tuple[str, int, str]


def _group(filename: str) -> str | None:
    """The group of a package's file; None for the standard library and builtins (``~``, ``<frozen``)."""
    return next((g for g, needles in GROUPS if any(n in filename for n in needles)), None)


def _shares(
    func: Func, raw: dict[Any, Any], memo: dict[Func, dict[str, float]], depth: int = 0
) -> dict[str, float]:
    """The groups ``func``'s own time is spent for: its own, or (standard library, builtins) its callers'.

    A builtin such as ``json.loads`` or a socket's ``recv`` is charged to whoever called it, in
    proportion to the time cProfile measured in it under each caller, followed up the callers until
    a package's frame; "other" when none is found within :data:`_CALLER_DEPTH` calls.
    """
    if func in memo:
        return memo[func]
    group = _group(func[0])
    if group is not None:
        memo[func] = {group: 1.0}
        return memo[func]
    memo[func] = {"other": 1.0}  # a recursion back here while it is worked out
    callers = raw.get(func, (0, 0, 0.0, 0.0, {}))[4]
    # Weighed by the time spent in ``func`` (and below it) under each caller: for a builtin that is
    # its own time; for a standard-library function that only passes through, what it called.
    weights = {caller: edge[3] for caller, edge in callers.items()}
    spent = sum(weights.values())
    if depth >= _CALLER_DEPTH or not callers or spent <= 0:
        return memo[func]
    shares: Counter[str] = Counter()
    for caller, weight in weights.items():
        for name, part in _shares(caller, raw, memo, depth + 1).items():
            shares[name] += weight / spent * part
    memo[func] = dict(shares)
    return memo[func]


def profile_summary(path: Path, rotations: int, top: int = 15) -> dict[str, Any]:
    """Thread-CPU per rotation by library group, and the functions with most own time.

    Each function's own time goes to its package's group; the standard library's and the
    builtins' to their callers' groups (:func:`_shares`), so that decoding JSON or waiting on a
    socket is charged to the library that asked for it.
    """
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    groups: Counter[str] = Counter()
    memo: dict[Func, dict[str, float]] = {}
    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        for name, part in _shares(func, raw, memo).items():
            groups[name] += tottime * part
    total = sum(groups.values())
    functions = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "thread_cpu_ms_per_rotation": round(total / rotations * 1000, 2),
        "by_group_ms_per_rotation": {g: round(s / rotations * 1000, 2) for g, s in groups.most_common()},
        "top_own_time": [
            {
                "function": f"{Path(f).name}:{line}:{func}",
                "ms_per_rotation": round(v[2] / rotations * 1000, 3),
                "calls_per_rotation": round(v[1] / rotations, 2),
            }
            for (f, line, func), v in functions
        ],
    }


# ---- the table ----------------------------------------------------------------------------------


def _median(rows: list[dict[str, Any]], *path: str) -> float:
    values = []
    for row in rows:
        value: Any = row
        for key in path:
            value = value[key]
        values.append(value)
    return float(statistics.median(values))


def table(rows: list[dict[str, Any]]) -> str:
    """One line per (store, replicas): medians over the repeats, ratio to the limit."""
    head = (
        "store",
        "R",
        "fleet s (min-max)",
        "crit. path s",
        "CPU floor s",
        "ratio",
        "met",
        "start-up s",
        "CPU ms/rot rotator|fakes|pg|others",
        "journal share",
        "busy/rot",
        "spread",
    )
    lines = [head]
    keys = sorted({(r["store"], r["replicas"]) for r in rows}, key=lambda k: (k[0] != "postgresql", k[1]))
    for store, replicas in keys:
        mine = [r for r in rows if (r["store"], r["replicas"]) == (store, replicas)]
        fleet = summary([r["fleet_s"] for r in mine])
        ratio = _median(mine, "ratio")
        cpu = [
            _median(mine, "cpu_ms_per_rotation", k)
            for k in ("rotator", "fakes", "postgres", "others_on_machine")
        ]
        spread = "/".join(str(n) for n in mine[len(mine) // 2]["rotations_by_replica"])
        lines.append(
            (
                store,
                str(replicas),
                f"{fleet['median']:.2f} ({fleet['min']:.2f}-{fleet['max']:.2f})",
                f"{_median(mine, 'critical_path_s'):.2f}",
                f"{_median(mine, 'cpu_floor_s'):.2f}",
                f"{ratio:.2f}x",
                "yes" if ratio <= TARGET_FLEET_RATIO else "NO",
                f"{_median(mine, 'startup_s'):.2f}",
                "|".join(f"{c:.1f}" for c in cpu),
                f"{_median(mine, 'journal', 'share_of_worker_time'):.2f}",
                f"{_median(mine, 'busy_per_rotation'):.3f}",
                spread,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


@contextlib.contextmanager
def _stores(args: argparse.Namespace, fakes: FakesProcess, folder: Path) -> Iterator[list[Store]]:
    with fresh_database() as url:
        database = url.rsplit("/", 1)[1]
        stores = [
            Store(
                "postgresql",
                url,
                fakes.ask("seed", group="pg", count=args.targets)["targets"],
                folder,
                database,
            )
        ]
        if args.sqlite:
            path = folder / "state-sqlite.db"
            targets = fakes.ask("seed", group="lite", count=args.targets)["targets"]
            stores.append(Store("sqlite", f"sqlite:///{path.name}", targets, folder, path=path))
        yield stores


def run_all(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every measurement (and the profile) into ``results``; the fakes and the folder are gone after."""
    folder = Path(tempfile.mkdtemp(prefix="rotator-fleet-"))
    fakes = FakesProcess()
    try:
        with _stores(args, fakes, folder) as stores:
            results["adoption_s"] = {s.name: round(adopt(s, fakes, folder), 1) for s in stores}
            fakes.ask("latency", seconds=LATENCY_S)
            for repeat in range(args.repeats):
                for store in stores:
                    for replicas in args.replicas if store.name == "postgresql" else [1]:
                        progress(f"repeat {repeat + 1}/{args.repeats}: {store.name}, {replicas} replica(s)")
                        row = measure(
                            store, fakes, replicas=replicas, concurrency=args.concurrency, folder=folder
                        )
                        results["rows"].append(row)
            if args.profile:
                progress("profile: 1 replica on PostgreSQL under cProfile (thread CPU); not in the table")
                path = folder / "replica.prof"
                row = measure(
                    stores[0], fakes, replicas=1, concurrency=args.concurrency, folder=folder, profile=path
                )
                results["profile"] = {"run": row, **profile_summary(path, row["targets"])}
    finally:
        fakes.close()
        if not args.keep:
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, write the JSON; 1 if any replica count misses 1.25x its limit."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--concurrency", type=int, default=4, help="max_concurrent_rotations (default 4)")
    parser.add_argument("--quick", action="store_true", help="100 targets, 1 repeat, no profile")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false", help="skip the SQLite comparison")
    parser.add_argument("--profile", action="store_true", help="one extra profiled run of 1 replica")
    parser.add_argument("--keep", action="store_true", help="keep the folder of configs and logs")
    parser.add_argument("--json", type=Path, default=Path("build/fleet.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.targets, args.repeats = min(args.targets, 100), 1
    elif "--profile" not in (argv if argv is not None else sys.argv[1:]):
        args.profile = True
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/fleet.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": CORES, "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg()},
        "latency_s": LATENCY_S,
        "rows": [],
    }
    run_all(args, results)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(table(results["rows"]))
    if "profile" in results:
        p = results["profile"]
        cpu = p["thread_cpu_ms_per_rotation"]
        print(f"\nprofile, 1 replica (thread CPU in its workers: {cpu} ms/rotation):")
        for group, ms in p["by_group_ms_per_rotation"].items():
            print(f"  {group:40} {ms:8.2f} ms/rotation")
    print(f"\ntotal {results['total_s']} s; JSON: {args.json}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    missed = [r for r in results["rows"] if r["ratio"] > TARGET_FLEET_RATIO]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
