"""One ``rotator daemon`` replica for ``bench/fleet.py``, with counters around its jobs and journal.

Run by ``fleet.py`` as ``python bench/fleet_replica.py CONFIG STATS [PROFILE]``: it is
``rotator --config CONFIG daemon`` (the same entry point, in this process), plus

* each daemon job's run (``Daemon._execute``: the engine's run of one target, then its wake-up
  planning) timed in wall and thread-CPU seconds, and counted by the engine's answer (``done``,
  ``idle``, ``busy`` ...): ``busy`` is a collision with another replica holding the target;
* each call of the journal's public methods timed in wall and thread-CPU seconds (the outermost
  only, not nested ones), and on
  PostgreSQL each statement counted (``psycopg.Connection.execute``) by its first words, and each
  transaction (``psycopg.Connection.transaction``: a BEGIN and a COMMIT, two more round trips);
  statements sent in a pipeline (``psycopg.Connection.pipeline``) are counted as such, since a
  pipeline's statements share one round trip;
* with PROFILE, a cProfile per worker thread on thread-CPU time, merged into PROFILE at exit.

STATS (JSON) is written when the daemon returns (SIGTERM). The wrappers cost about a microsecond
per call, against milliseconds per journal call.
"""

import cProfile
import json
import pstats
import sys
import threading
import time

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from rotator.doors import cli
from rotator.doors.daemon import Daemon
from rotator.journal.postgres import PostgresJournal
from rotator.journal.sqlite import SQLiteJournal


_lock = threading.Lock()
_local = threading.local()
_statuses: Counter[str] = Counter()
_journal: dict[str, list[float]] = {}  # method: [calls, seconds]
_totals = {
    "worker_s": 0.0,
    "worker_cpu_s": 0.0,
    "journal_cpu_s": 0.0,
    "statements": 0.0,
    "transactions": 0.0,
    "pipelines": 0.0,  # pipeline blocks: one round trip each
    "pipelined": 0.0,  # statements sent in one (not a round trip each)
}
#: Each statement by its first words (its table): what a rotation sends.
_kinds: Counter[str] = Counter()
_profiles: list[cProfile.Profile] = []


def _timed_journal(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - any journal method
        depth = getattr(_local, "depth", 0)
        _local.depth = depth + 1
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            _local.depth = depth
            if depth == 0:
                elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
                with _lock:
                    entry = _journal.setdefault(name, [0, 0.0])
                    entry[0] += 1
                    entry[1] += elapsed
                    _totals["journal_cpu_s"] += used

    return wrapper


#: Each statement text's kind, worked out once: the regex over a 2,500-character query cost
#: about 70 us a statement, charged to the replica's CPU and its workers' time.
_kinds_of: dict[object, str] = {}


def _kind(query: object) -> str:
    """A statement's first words up to its first table (a composed query: its first words)."""
    cacheable = isinstance(query, str | bytes)
    if cacheable and (known := _kinds_of.get(query)) is not None:
        return known
    text = query.decode() if isinstance(query, bytes) else str(query)
    words = text.split()
    kind = " ".join(words[:4])[:80]
    for i, word in enumerate(words):
        if word.upper() in {"FROM", "INTO", "UPDATE"} and i + 1 < len(words):
            kind = " ".join(words[: i + 2])[:80]
            break
    if cacheable:
        _kinds_of[query] = kind
    return kind


def _count_statements() -> None:
    """Count psycopg's statements, transactions and pipelines (the round trips a rotation makes)."""
    execute = psycopg.Connection.execute

    def counted(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        kind = _kind(args[0]) if args else "?"
        with _lock:
            _totals["statements"] += 1
            _totals["pipelined"] += self._pipeline is not None  # psycopg's own marker
            _kinds[kind] += 1
        return execute(self, *args, **kwargs)

    psycopg.Connection.execute = counted  # type: ignore[method-assign]
    transaction = psycopg.Connection.transaction

    def counted_transaction(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        with _lock:
            _totals["transactions"] += 1  # a BEGIN and a COMMIT (or ROLLBACK): two more round trips
        return transaction(self, *args, **kwargs)

    psycopg.Connection.transaction = counted_transaction  # type: ignore[method-assign]
    pipeline = psycopg.Connection.pipeline

    def counted_pipeline(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        with _lock:
            _totals["pipelines"] += 1  # its statements and its Sync: one round trip
        return pipeline(self, *args, **kwargs)

    psycopg.Connection.pipeline = counted_pipeline  # type: ignore[method-assign]


def _instrument(*, profile: bool) -> None:
    for store in (PostgresJournal, SQLiteJournal):
        for name, method in list(vars(store).items()):
            if not name.startswith("_") and callable(method) and not isinstance(method, staticmethod):
                setattr(store, name, _timed_journal(name, method))
    _count_statements()
    run = Daemon._execute  # noqa: SLF001 - the one place every job's run of a target goes through

    def timed(self: Daemon, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        profiler = None
        if profile:
            profiler = getattr(_local, "profiler", None)
            if profiler is None:
                profiler = _local.profiler = cProfile.Profile(time.thread_time)
                with _lock:
                    _profiles.append(profiler)
            profiler.enable()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            outcome = run(self, *args, **kwargs)
        finally:
            if profiler is not None:
                profiler.disable()
        with _lock:
            _totals["worker_s"] += time.perf_counter() - started
            _totals["worker_cpu_s"] += time.thread_time() - cpu
            _statuses[outcome.status if outcome is not None else "cancelled"] += 1
        return outcome

    Daemon._execute = timed  # type: ignore[method-assign]  # noqa: SLF001


def main() -> int:
    """Run the daemon; write the counters (and the merged profile) when it returns."""
    config, stats = sys.argv[1], Path(sys.argv[2])
    profile = Path(sys.argv[3]) if len(sys.argv) > 3 else None  # noqa: PLR2004 - the optional argument
    _instrument(profile=profile is not None)
    code = cli.main(["--config", config, "daemon"])
    with _lock:
        body = {
            "statuses": dict(_statuses),
            "journal": {k: {"calls": int(v[0]), "seconds": round(v[1], 4)} for k, v in _journal.items()},
            "journal_s": round(sum(v[1] for v in _journal.values()), 4),
            "statement_kinds": dict(_kinds),
            **{k: round(v, 4) for k, v in _totals.items()},
        }
        if profile is not None and _profiles:
            pstats.Stats(*_profiles).dump_stats(str(profile))
    stats.write_text(json.dumps(body))
    return code


if __name__ == "__main__":
    sys.exit(main())
