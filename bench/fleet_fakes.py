"""The fakes for ``bench/fleet.py``, in a process of their own so they do not share the replicas' CPU.

Started by ``fleet.py`` (not by hand): it prints one JSON line (the URLs and the variables rotator
reads), then answers one JSON line per command read on stdin:

* ``{"op": "seed", "group": G, "count": N}``: N projects, each with a token its connection holds;
  answers ``{"targets": [...]}`` (the config's target entries, ``adopt_token_id`` included);
* ``{"op": "latency", "seconds": S}``: S added to every route rotator calls (not to the fake
  Infisical's own validation hop to GitLab, which rotator does not wait on directly);
* ``{"op": "reset"}`` and ``{"op": "counts"}``: rotator's requests per upstream and route;
* ``{"op": "quit"}``.

The fakes' rate limits stay off (their default, as on a self-hosted instance), so they never bind.

With ``ROTATOR_BENCH_FAKES_PROFILE=PATH`` in the environment (``fleet.py`` passes its own on), every
request both fakes serve is profiled with cProfile on thread-CPU time (one profiler per connection
thread, on only while a request is read and answered), merged into PATH at ``quit``:
``python -m pstats PATH`` then shows where the fakes' CPU per request goes.
"""

import cProfile
import json
import os
import pstats
import sys
import threading
import time

from pathlib import Path
from typing import Any

from run import VALIDATION_HOP, Fleet, _manager, counts, reset, set_latency

from rotator.testing import _http, start_fakes


_profiles: list[cProfile.Profile] = []
_profiles_lock = threading.Lock()
_local = threading.local()


def _answer(body: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(body) + "\n")
    sys.stdout.flush()


def _profile_requests() -> None:
    """Profile each request the fakes read and answer (see the module docstring)."""
    one_request = _http._RequestHandler.handle_one_request  # noqa: SLF001

    def profiled(handler: Any) -> None:  # noqa: ANN401 - http.server's handler
        profiler = getattr(_local, "profiler", None)
        if profiler is None:
            profiler = _local.profiler = cProfile.Profile(time.thread_time)
            with _profiles_lock:
                _profiles.append(profiler)
        profiler.enable()
        try:
            one_request(handler)
        finally:
            profiler.disable()

    _http._RequestHandler.handle_one_request = profiled  # type: ignore[method-assign]  # noqa: SLF001


def main() -> None:
    """Serve the commands until ``quit`` or the end of stdin."""
    profile = os.environ.get("ROTATOR_BENCH_FAKES_PROFILE")
    if profile:
        _profile_requests()
    try:
        _serve()
    finally:
        if profile:
            with _profiles_lock:
                done = [p for p in _profiles if p.getstats()]
            if done:
                pstats.Stats(*done).dump_stats(profile)


def _serve() -> None:
    with start_fakes() as fakes:
        manager = _manager(fakes.gitlab)
        token = fakes.gitlab.seed_personal_token(manager, ["api"], name="bench-manager")
        fleet = Fleet(fakes, Path(), token.value)
        environment = {**fakes.seed.environment(), "ROTATOR_GITLAB_TOKEN": token.value}
        _answer(
            {
                "gitlab_url": fakes.seed.gitlab_url,
                "infisical_url": fakes.seed.infisical_url,
                "env": environment,
            }
        )
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "quit":
                break
            if op == "seed":
                _answer({"targets": fleet.seed(command["group"], command["count"])})
            elif op == "latency":
                set_latency(fakes, command["seconds"])
                _answer({})
            elif op == "reset":
                reset(fakes)
                _answer({})
            elif op == "counts":
                hops = fakes.gitlab.call_counts().get(VALIDATION_HOP, 0)
                _answer({"routes": counts(fakes), "validation_hops": hops})
            else:
                _answer({"error": f"unknown op {op!r}"})


if __name__ == "__main__":
    main()
