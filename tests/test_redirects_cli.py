"""``rotator run-once`` when GitLab points elsewhere: one error line, exit 1, nothing sent there."""

from pathlib import Path

import pytest
import yaml

from rotator.testing import Fakes, ForeignHost
from tests.cli_harness import Harness


pytestmark = pytest.mark.slow

PROJECT = "GET /api/v4/projects/:id"
GET = "GET /api/v4/projects/:id/access_tokens/:token_id"
SELF = "GET /api/v4/personal_access_tokens/self"
LIST = "GET /api/v4/projects/:id/access_tokens"


def _without_adoption(h: Harness) -> None:
    """Drop ``adopt_token_id``: the first rotation then lists the project's tokens ("journal lost?")."""
    path = h.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    for target in config["targets"]:
        del target["adopt_token_id"]
    path.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    ("route", "kind", "said"),
    [
        (PROJECT, "redirect", "-> 302: redirected to {url}/api/v4/projects/"),
        (GET, "redirect", "-> 302: redirected to {url}/api/v4/projects/"),
        (SELF, "redirect", "-> 302: redirected to {url}/api/v4/personal_access_tokens/self"),
        (LIST, "foreign_next", "-> 200: the next-page link points to {url}/api/v4/projects/"),
    ],
)
def test_gitlab_pointing_elsewhere_fails_the_target_and_sends_nothing_there(  # noqa: PLR0913, PLR0917 - one row of the table
    fakes: Fakes, foreign: ForeignHost, tmp_path: Path, route: str, kind: str, said: str
) -> None:
    """A redirect (project, token read, self-check) or a foreign next link: exit 1, one line, no leak."""
    h = Harness(fakes, tmp_path, targets=1)
    if route == LIST:
        _without_adoption(h)
    getattr(fakes.gitlab.faults, kind)(route, foreign.url, times=None)
    result = h.run("run-once")
    assert result.code == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if said.format(url=foreign.url) in line]
    assert len(lines) == 1, result.stdout
    assert f" gitlab {route.replace('/api/v4', '')} -> " in lines[0]
    assert foreign.received() == []
    assert fakes.gitlab.test_only_stranger_credentials() == []
    # Nothing is left behind: the held token works and is the project's only active one.
    assert h.held_works(0)
    assert h.active_tokens(0) == [fakes.seed.adopt_token_ids[0]]
