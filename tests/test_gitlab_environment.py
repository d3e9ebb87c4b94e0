"""The GitLab adapter reads the proxy and CA variables once, at build, exactly as requests would."""

import os

from collections.abc import Iterator, Mapping

import pytest
import requests

import rotator

from rotator.adapters.gitlab import GitLabAPI
from rotator.core.secret import Secret
from rotator.testing import Fakes
from rotator.testing.transport import FakeAdapter


PROXY = "http://proxy.invalid:3128"
BUNDLE = "/etc/ssl/private-ca.pem"
#: Variable sets the adapter must read as requests does (the fake listens on http://127.0.0.1).
ENVIRONMENTS: tuple[dict[str, str], ...] = (
    {},
    {"HTTP_PROXY": PROXY},
    {"http_proxy": PROXY, "https_proxy": "http://other.invalid:8080"},
    {"ALL_PROXY": PROXY},
    {"HTTP_PROXY": PROXY, "NO_PROXY": "127.0.0.1"},
    {"HTTP_PROXY": PROXY, "no_proxy": "example.com,127.0.0.0/8"},
    {"HTTP_PROXY": PROXY, "NO_PROXY": "*"},
    {"HTTP_PROXY": PROXY, "NO_PROXY": "elsewhere.example"},
    {"REQUESTS_CA_BUNDLE": BUNDLE},
    {"CURL_CA_BUNDLE": BUNDLE},
    {"REQUESTS_CA_BUNDLE": BUNDLE, "CURL_CA_BUNDLE": "/other.pem", "HTTPS_PROXY": PROXY},
)


class _Seen(FakeAdapter):
    """The fake GitLab, noting the proxies and the CA bundle requests hands each request."""

    def __init__(self, fakes: Fakes) -> None:
        super().__init__(fakes.gitlab)
        self.sent: list[tuple[dict[str, str], bool | str | None]] = []

    def send(  # noqa: PLR0913, PLR0917 - requests' own signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,  # noqa: FBT002
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,  # noqa: FBT002
        cert: object = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Note the settings, then answer as the fake does."""
        self.sent.append((dict(proxies or {}), verify))
        return super().send(request, stream, timeout, verify, cert, proxies)


@pytest.fixture(autouse=True)
def bare(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA variable from the machine running the tests."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}:
            monkeypatch.delenv(name)


@pytest.fixture
def seen(fakes: Fakes) -> _Seen:
    """The recording adapter over the fake GitLab."""
    return _Seen(fakes)


@pytest.fixture
def session(seen: _Seen) -> Iterator[requests.Session]:
    """A session (environment trusted, as requests makes them) whose requests go to ``seen``."""
    with requests.Session() as session:
        session.mount("http://", seen)
        session.mount("https://", seen)
        yield session


def _api(fakes: Fakes, session: requests.Session) -> GitLabAPI:
    return GitLabAPI(
        fakes.seed.gitlab_url,
        Secret(fakes.seed.manager_token),
        timeout=5.0,
        user_agent=f"rotator/{rotator.__version__}",
        session=session,
    )


def _requests_own(url: str) -> tuple[dict[str, str], bool | str | None]:
    """What requests itself settles for a request to ``url`` (python-gitlab passes ``verify=True``)."""
    with requests.Session() as plain:
        settings = plain.merge_environment_settings(url, {}, None, True, None)  # noqa: FBT003 - requests' signature
    return dict(settings["proxies"]), settings["verify"]


@pytest.mark.parametrize("variables", ENVIRONMENTS, ids=lambda env: ",".join(env) or "none")
def test_every_request_gets_the_proxies_and_ca_bundle_requests_would_pick(
    fakes: Fakes,
    session: requests.Session,
    seen: _Seen,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
) -> None:
    """NO_PROXY, *_PROXY and the CA variables give each request what requests' own reading gives."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    api = _api(fakes, session)
    project = fakes.seed.project_ids[0]
    api.list_tokens(project)
    api.token_self(Secret(fakes.seed.manager_token))  # a client of its own: the same settings
    expected = _requests_own(f"{fakes.seed.gitlab_url}/api/v4/projects/{project}/access_tokens")
    assert seen.sent == [expected, expected]


def test_the_variables_are_read_when_the_adapter_is_built(
    fakes: Fakes, session: requests.Session, seen: _Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy or bundle set after the adapter was built is not used, nor one removed after it dropped."""
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", BUNDLE)
    api = _api(fakes, session)
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/changed.pem")
    api.manager_self()
    assert seen.sent == [({"http": PROXY}, BUNDLE)]


def test_a_session_that_ignores_the_environment_keeps_ignoring_it(
    fakes: Fakes, session: requests.Session, seen: _Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session given with ``trust_env`` off sends direct and verifies against certifi, as before."""
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", BUNDLE)
    session.trust_env = False
    _api(fakes, session).manager_self()
    assert seen.sent == [({}, True)]
