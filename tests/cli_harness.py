"""Drive the real ``rotator`` command as a subprocess against the fakes, and inspect both sides."""

import json
import os
import subprocess
import sys

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from rotator.testing import Fakes


CONNECTIONS = ("3c90c3cc-0d44-4b50-8888-8dd25736052a", "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
UA = "rotator/"
MUTATIONS = ("POST /api/v4/projects/:id/access_tokens", "PATCH /api/v1/app-connections/gitlab/:connectionId")


@dataclass
class Result:
    """A finished ``rotator`` process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:  # noqa: ANN401 - whatever the command printed
        """The standard output, parsed as JSON."""
        return json.loads(self.stdout)


class Harness:
    """A config in a temporary folder pointing at running fakes, and helpers to run and inspect."""

    def __init__(self, fakes: Fakes, folder: Path, **target_fields: Any) -> None:  # noqa: ANN401
        """Write ``rotator.yaml`` for ``fakes`` with ``target_fields`` in ``defaults``."""
        self.fakes, self.folder = fakes, folder
        self.write_config(**target_fields)

    def write_config(
        self,
        *,
        targets: int = 2,
        timeout: str = "10s",
        urls: tuple[str, str] | None = None,
        **defaults: Any,  # noqa: ANN401
    ) -> None:
        """(Re)write the config: the example's targets, ``defaults`` merged over grace 1h, scopes [api].

        ``urls`` replaces the GitLab and Infisical addresses (to point one at a closed port).
        """
        seed = self.fakes.seed
        gitlab_url, infisical_url = urls or (seed.gitlab_url, seed.infisical_url)
        config = {
            "gitlab": {"url": gitlab_url, "timeout": timeout},
            "infisical": {"url": infisical_url, "timeout": timeout},
            "state": {"url": "sqlite:///state.db"},
            "defaults": {"grace": "1h", "token": {"scopes": ["api"], "lifetime": "30d"}, **defaults},
            "targets": [
                {
                    "name": f"{path.rsplit('/', 1)[-1]}-deploy",
                    "project": path,
                    "connection_id": CONNECTIONS[i],
                    "adopt_token_id": seed.adopt_token_ids[i],
                }
                for i, path in enumerate(seed.project_paths[:targets])
            ],
        }
        (self.folder / "rotator.yaml").write_text(yaml.safe_dump(config))

    def command(self, *args: str) -> list[str]:
        """``python -m rotator --config … ARGS``."""
        return [sys.executable, "-m", "rotator", "--config", str(self.folder / "rotator.yaml"), *args]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment less ``ROTATOR_*``, plus the fakes' credentials and clock offset.

        The fakes' ``seed.environment()`` carries ``ROTATOR_TEST_HOOKS``, the key without which
        rotator ignores the clock offset and ``crash_after`` (:mod:`rotator.hooks`).
        """
        offset = int(self.fakes.clock.offset.total_seconds())
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_")},
            **self.fakes.seed.environment(),
            "ROTATOR_TEST_CLOCK_OFFSET": f"{offset}s" if offset >= 0 else f"-{-offset}s",
            **(extra or {}),
        }

    def run(
        self, *args: str, crash_after: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Result:
        """Run ``rotator --config … ARGS`` with the fakes' clock offset and credentials."""
        env = self.environment(extra_env)
        if crash_after:
            env["ROTATOR_TEST_CRASH_AFTER"] = crash_after
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=120, check=False, env=env
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def mutations(self) -> int:
        """Creates, PATCHes and DELETEs rotator sent to the fakes so far."""
        counts = {
            **self.fakes.gitlab.call_counts(user_agent=UA),
            **self.fakes.infisical.call_counts(user_agent=UA),
        }
        deletes = sum(n for route, n in counts.items() if route.startswith("DELETE"))
        return deletes + sum(counts.get(route, 0) for route in MUTATIONS)

    def calls(self) -> int:
        """Every request rotator sent, logins included."""
        return len(self.fakes.gitlab.calls(user_agent=UA)) + len(self.fakes.infisical.calls(user_agent=UA))

    def held_works(self, index: int = 0) -> bool:
        """Whether GitLab accepts the token Infisical holds for this connection (test-only views)."""
        held = self.fakes.infisical.test_only_held_token(CONNECTIONS[index])
        return self.fakes.gitlab.test_only_accepts(held)

    def active_tokens(self, index: int = 0) -> list[int]:
        """Ids of the project's active access tokens (the fake's test-only view: no fault applies)."""
        return self.fakes.gitlab.test_only_active_token_ids(self.fakes.seed.project_ids[index])


def patch_by_hand(client: httpx.Client, gitlab_url: str, connection_id: str, value: str) -> httpx.Response:
    """A person's PATCH of a connection to ``value`` (``client`` logged in as the seeded identity)."""
    return client.patch(
        f"/api/v1/app-connections/gitlab/{connection_id}",
        json={"credentials": {"accessToken": value, "accessTokenType": "project", "instanceUrl": gitlab_url}},
    )
