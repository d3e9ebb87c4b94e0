"""Every token rotator creates says, in its description, that rotator manages it (#18 item 4)."""

import datetime as dt
import io
import json

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hypothesis import given
from hypothesis import strategies as st

import rotator

from rotator.adapters.gitlab import GitLabAPI
from rotator.core.description import MAX_LENGTH, token_description
from rotator.core.errors import GitLabError
from rotator.core.model import TokenRequest
from rotator.core.secret import Secret
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness


CREATE = "POST /api/v4/projects/:id/access_tokens"
CONNECTION = "3f1c5a2e-9b7d-4c1e-8f2a-6d5b4c3a2e1f"
OPENING = "Managed by rotator for target "
WARNING = ". Do not rotate or revoke it by hand: rotator replaces it and updates Infisical."
DESCRIBED = token_description("app-deploy", "project", "acme/app", CONNECTION)


def test_the_description_names_rotator_the_target_and_the_owner() -> None:
    """The text says who manages the token, for which target, owner and connection, and not to touch it."""
    expected = f"{OPENING}app-deploy (project acme/app, Infisical connection {CONNECTION}){WARNING}"
    assert token_description("app-deploy", "project", "acme/app", CONNECTION) == expected
    assert "(service account 1234," in token_description("ci", "service_account", 1234, CONNECTION)
    assert "(group 7," in token_description("ci", "group", 7, CONNECTION)


@given(
    target=st.text(min_size=1, max_size=400),
    kind=st.sampled_from(["project", "group", "service_account"]),
    owner=st.one_of(st.integers(min_value=1), st.text(max_size=400)),
)
def test_the_description_always_fits_and_keeps_its_warning(target: str, kind: str, owner: int | str) -> None:
    """Whatever the names, at most 255 characters, opening and warning intact, short ones verbatim."""
    text = token_description(target, kind, owner, CONNECTION)
    assert len(text) <= MAX_LENGTH
    assert text.startswith(OPENING)
    assert text.endswith(WARNING)
    about = f"{target} ({kind.replace('_', ' ')} {owner}, Infisical connection {CONNECTION})"
    if len(OPENING) + len(about) + len(WARNING) <= MAX_LENGTH:
        assert text == f"{OPENING}{about}{WARNING}"
    else:
        assert text.removesuffix(WARNING).endswith("...")


@pytest.fixture
def api(fakes: Fakes) -> Iterator[GitLabAPI]:
    """The adapter with the seeded manager token; waits are recorded, never slept."""
    adapter = GitLabAPI(
        fakes.seed.gitlab_url,
        Secret(fakes.seed.manager_token),
        timeout=5.0,
        user_agent=f"rotator/{rotator.__version__}",
        sleep=lambda _seconds: None,
    )
    yield adapter
    adapter.close()


def _request(fakes: Fakes, description: str | None = DESCRIBED) -> TokenRequest:
    expires = fakes.clock.now().date() + dt.timedelta(days=30)
    return TokenRequest("app-rotated", ("api",), 40, expires, description)


def _in_30_days(fakes: Fakes) -> str:
    return (fakes.clock.now().date() + dt.timedelta(days=30)).isoformat()


def _events(logs: io.StringIO, name: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, logs.getvalue().splitlines()) if e.get("event") == name]


def _creates(fakes: Fakes) -> list[int | None]:
    return [call.status for call in fakes.gitlab.calls(CREATE)]


def test_the_create_sends_the_description_and_gitlab_keeps_it(
    api: GitLabAPI, fakes: Fakes, logs: io.StringIO
) -> None:
    """A 17.7+ server stores the description: one create, no note."""
    new = api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert fakes.gitlab.test_only_token(new.info.id).description == DESCRIBED
    assert _creates(fakes) == [201]
    assert _events(logs, "gitlab.description_refused") == _events(logs, "gitlab.description_ignored") == []


def test_a_server_refusing_the_field_gets_the_create_once_more_without_it(
    api: GitLabAPI, fakes: Fakes, logs: io.StringIO
) -> None:
    """A 400 naming description created nothing: one more create without it, and one note in the log."""
    fakes.gitlab.set_descriptions("refused")
    new = api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert _creates(fakes) == [400, 201]
    assert [t.id for t in fakes.gitlab.state.tokens.values() if t.name == "app-rotated"] == [new.info.id]
    assert fakes.gitlab.test_only_token(new.info.id).description is None
    [note] = _events(logs, "gitlab.description_refused")
    assert note["error"] == "description does not have a valid value"
    assert note["level"] == "warning"


def test_a_server_ignoring_the_field_creates_once_with_a_note(
    api: GitLabAPI, fakes: Fakes, logs: io.StringIO
) -> None:
    """A server before 17.7 drops the field silently: one create, the token kept, a note saying so."""
    fakes.gitlab.set_descriptions("ignored")
    new = api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert _creates(fakes) == [201]
    assert new.value.reveal()
    assert len(_events(logs, "gitlab.description_ignored")) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"message": "400 Bad request - Expires at must be before 2027-01-01"}),
        (500, {"message": "500 Internal Server Error - description"}),
        (502, None),
    ],
    ids=["400-other-field", "500-naming-description", "502"],
)
def test_no_other_failure_sends_the_create_again(
    api: GitLabAPI, fakes: Fakes, status: int, body: object
) -> None:
    """Only a 400 about the description proves nothing was made: any other failure is raised as is."""
    fakes.gitlab.faults.fail(CREATE, status, body=body)
    with pytest.raises(GitLabError) as raised:
        api.create_token(fakes.seed.project_ids[0], _request(fakes))
    assert raised.value.status == status
    assert _creates(fakes) == [status]


def test_a_refused_create_without_description_is_not_repeated(api: GitLabAPI, fakes: Fakes) -> None:
    """With no description asked, a 400 naming the word is GitLab's answer, not ours to work around."""
    fakes.gitlab.set_descriptions("refused")
    fakes.gitlab.faults.fail(CREATE, 400, body={"error": "description does not have a valid value"})
    with pytest.raises(GitLabError):
        api.create_token(fakes.seed.project_ids[0], _request(fakes, description=None))
    assert _creates(fakes) == [400]


def test_the_fake_refusing_descriptions_creates_nothing(fakes: Fakes) -> None:
    """The fake's refused mode answers Grape's 400 naming the field, before creating anything."""
    fakes.gitlab.set_descriptions("refused")
    before = dict(fakes.gitlab.state.tokens)
    answer = httpx.post(
        f"{fakes.seed.gitlab_url}/api/v4/projects/{fakes.seed.project_ids[0]}/access_tokens",
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json={"name": "x", "scopes": ["api"], "expires_at": _in_30_days(fakes), "description": "d"},
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "description does not have a valid value"})
    assert fakes.gitlab.state.tokens == before


def test_the_fake_before_17_7_shows_no_description_key(fakes: Fakes) -> None:
    """The fake's ignored mode drops the parameter and lists tokens without a description key."""
    fakes.gitlab.set_descriptions("ignored")
    url = f"{fakes.seed.gitlab_url}/api/v4/projects/{fakes.seed.project_ids[0]}/access_tokens"
    made = httpx.post(
        url,
        headers={"PRIVATE-TOKEN": fakes.seed.manager_token},
        json={"name": "x", "scopes": ["api"], "expires_at": _in_30_days(fakes), "description": "d"},
    )
    assert made.status_code == 201
    assert "description" not in made.json()
    assert fakes.gitlab.test_only_token(made.json()["id"]).description is None


def test_run_once_gives_each_new_token_its_targets_description(fakes: Fakes, tmp_path: Path) -> None:
    """A real run-once: each target's new token says it is rotator's, naming that target."""
    h = Harness(fakes, tmp_path)
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    for index, name in enumerate(("app-deploy", "api-deploy")):
        [new] = [t for t in h.active_tokens(index) if t != fakes.seed.adopt_token_ids[index]]
        path = fakes.seed.project_paths[index]
        expected = token_description(name, "project", path, CONNECTIONS[index])
        assert fakes.gitlab.test_only_token(new).description == expected
