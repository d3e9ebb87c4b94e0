"""The HTTP adapters' client CPU per call, against the fakes on loopback (the calling thread's CPU only).

``python bench/clients.py [--calls N] [--profile]``: one Infisical ``GET`` of a connection and one
GitLab ``GET`` of a token, each repeated N times (default 200) in 7 rounds, through the adapters
``rotator.doors.wiring`` builds (real httpx, requests and python-gitlab over real sockets). It
prints the least CPU per call of the 7 rounds: the fakes answer in threads of their own, which
``time.thread_time`` of the calling thread does not count. ``--profile`` adds a cProfile of both
calls, sorted by cumulative time (the profiler's overhead inflates the times; the shares count).
"""

import argparse
import cProfile
import pstats
import sys
import time

from collections.abc import Callable

from run import fleet_fakes

from rotator.core.model import Kind, Owner
from rotator.doors import wiring


ROUNDS = 7


def best(call: Callable[[], object], calls: int) -> float:
    """The least CPU per call (microseconds, this thread) over :data:`ROUNDS` rounds of ``calls``."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.thread_time()
        for _ in range(calls):
            call()
        rounds.append((time.thread_time() - started) / calls * 1e6)
    return min(rounds)


def main(argv: list[str] | None = None) -> int:
    """Measure (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per round (default 200)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of both calls")
    args = parser.parse_args(argv)
    with fleet_fakes() as fleet:
        [target] = fleet.seed("clients", 1)
        env = fleet.environment()
        rt = wiring.build(wiring.load(str(fleet.write_config("clients")), env), env)
        try:
            gitlab, infisical = rt.engine.ctx.gitlab, rt.engine.ctx.infisical
            owner = Owner(Kind.PROJECT, gitlab.project_id(target["project"]))

            def read_connection() -> object:
                return infisical.get_connection(target["connection_id"])

            def read_token() -> object:
                return gitlab.get_token(owner, target["adopt_token_id"])

            read_connection()  # the login, and the connections made, before any round
            read_token()
            sys.stdout.write(
                f"Infisical GET connection: {best(read_connection, args.calls):.0f} us CPU per call\n"
            )
            sys.stdout.write(f"GitLab GET token: {best(read_token, args.calls):.0f} us CPU per call\n")
            if args.profile:
                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
                for _ in range(args.calls):
                    read_connection()
                    read_token()
                profiler.disable()
                pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(40)
        finally:
            rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
