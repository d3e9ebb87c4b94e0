"""How fast the fakes answer on loopback, so later benchmarks know the floor they add.

Run: ``python bench/fakes.py [--runs N]``. Prints the median, min and max per call, in ms, for the
calls a rotation makes, through the same clients rotator uses (python-gitlab, httpx).
"""

import argparse
import statistics
import time

from collections.abc import Callable

import gitlab
import httpx

from rotator.testing import start_fakes


def _measure(call: Callable[[], object], runs: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs
    with start_fakes() as fakes:
        seed = fakes.seed
        gl = gitlab.Gitlab(seed.gitlab_url, private_token=seed.manager_token, timeout=10)
        project = gl.projects.get("acme/app", lazy=True)
        made = project.access_tokens.create({"name": "bench", "scopes": ["api"]})
        with httpx.Client(base_url=seed.infisical_url, timeout=10) as infisical:
            infisical.headers["Authorization"] = f"Bearer {seed.infisical_token}"
            path = f"/api/v1/app-connections/gitlab/{seed.connection_ids[0]}"
            body = {
                "credentials": {
                    "accessToken": made.token,
                    "accessTokenType": "project",
                    "instanceUrl": seed.gitlab_url,
                }
            }
            rows = {
                "gitlab: list tokens (python-gitlab)": lambda: project.access_tokens.list(get_all=True),
                "gitlab: create token (python-gitlab)": lambda: project.access_tokens.create(
                    {"name": "bench", "scopes": ["api"]}
                ),
                "infisical: GET connection (httpx)": lambda: infisical.get(path),
                "infisical: PATCH connection (httpx, incl. GitLab /user)": lambda: infisical.patch(
                    path, json=body
                ),
            }
            print(f"{'call':58} {'median ms':>10} {'min':>8} {'max':>8}   ({runs} runs each)")
            for name, call in rows.items():
                median, low, high = _measure(call, runs)
                print(f"{name:58} {median:10.2f} {low:8.2f} {high:8.2f}")


if __name__ == "__main__":
    main()
