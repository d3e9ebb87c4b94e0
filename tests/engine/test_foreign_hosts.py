"""GitLab pointing elsewhere, through the engine: a redirect or a next-page link to another host."""

from pathlib import Path

import pytest
import yaml

from rotator.testing import Fakes, ForeignHost
from tests.engine.harness import EngineCase
from tests.faults import ledger
from tests.faults.calls import LIST, PROJECT, SELF, TOKEN


def without_adoption(case: EngineCase) -> None:
    """Drop ``adopt_token_id``: the first rotation then lists the project's tokens ("journal lost?")."""
    path = case.folder / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    for target in config["targets"]:
        del target["adopt_token_id"]
    path.write_text(yaml.safe_dump(config))


#: (route, fault, what the failure line says): every way the fakes point GitLab's client elsewhere.
POINTERS = [
    (PROJECT, "redirect", "-> 302: redirected to {url}/api/v4/projects/"),
    (TOKEN, "redirect", "-> 302: redirected to {url}/api/v4/projects/"),
    (SELF, "redirect", "-> 302: redirected to {url}/api/v4/personal_access_tokens/self"),
    (LIST, "foreign_next", "-> 200: the next-page link points to {url}/api/v4/projects/"),
]


@pytest.mark.parametrize(("route", "kind", "said"), POINTERS)
def test_gitlab_pointing_elsewhere_fails_the_target_and_sends_nothing_there(  # noqa: PLR0913, PLR0917 - one row of the table
    fakes: Fakes, foreign: ForeignHost, tmp_path: Path, route: str, kind: str, said: str
) -> None:
    """A redirect (project, token read, self-check) or a foreign next link: exit 1, one line, no leak."""
    case = EngineCase(fakes, tmp_path)
    case.elsewhere = foreign
    if route == LIST:
        without_adoption(case)
    getattr(fakes.gitlab.faults, kind)(route, foreign.url, times=None)
    result = case.run("run-once")
    ledger.count("faults")
    case.assert_reported(result)
    lines = [line for line in result.stdout.splitlines() if said.format(url=foreign.url) in line]
    assert len(lines) == 1, result.stdout
    assert f" gitlab {route.replace('/api/v4', '')} -> " in lines[0]
    # Nothing is left behind: the held token is the project's only active one.
    assert case.managed() == [fakes.seed.adopt_token_ids[0]]
    if route == LIST:
        case.rewrite()  # the operator follows the "journal lost?" advice and adopts the held token
    case.converge(cli=False)
