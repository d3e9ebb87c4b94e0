"""The test hooks' opt-in: ``ROTATOR_TEST_*`` act only on fakes that prove they handed out the key.

Two hooks exist for subprocess tests (:mod:`rotator.doors.wiring` applies them): a clock offset and a
crash after a recorded step. Neither may ever act on a production install, and a loopback URL
proves nothing there: it may be a port-forward to a real GitLab. So a hook variable is honoured
only when

1. ``gitlab.url`` and ``infisical.url`` are both loopback, and
2. ``ROTATOR_TEST_HOOKS`` holds a key, and
3. a configured upstream proves it knows that key: rotator sends a fresh random challenge to
   ``GET /_fake/test-hooks`` and compares the answer with HMAC-SHA256(key, challenge) in constant
   time. Only rotator's fakes serve that route (they make the key at start and hand it out in
   ``Seed.environment()`` and ``rotator fakes``); a real GitLab or Infisical answers 404 or a
   redirect to its sign-in page (never followed). The key itself never crosses the wire.

The check is made only when a hook variable is set, and once per command (:func:`forget_proofs`
at the start of each): runs without hooks make no extra call.
"""

import functools
import hashlib
import hmac
import secrets

from urllib.parse import urlsplit

import httpx


OPT_IN = "ROTATOR_TEST_HOOKS"
PATH = "/_fake/test-hooks"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TIMEOUT = 5.0


def loopback(*urls: str) -> bool:
    """Whether every URL names a loopback host."""
    return all(urlsplit(url).hostname in _LOOPBACK for url in urls)


def proof(key: str, challenge: str) -> str:
    """What a fake holding ``key`` answers to ``challenge``."""
    return hmac.new(key.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def refusal(urls: tuple[str, ...], key: str | None, user_agent: str) -> str | None:
    """Why the hooks must stay off, or ``None`` when one of ``urls`` proved ``key``."""
    if not key:
        return f"{OPT_IN} is not set (only the fakes hand it out: see `rotator fakes`)"
    return _ask(urls, key, user_agent)


def forget_proofs() -> None:
    """Forget every proof: the next hook check asks the fakes again.

    :func:`rotator.doors.cli.main` calls it first, so one command's proof never arms the next command run
    in the same process (the test harness runs commands in process): each proves the key afresh,
    exactly as a new process would.
    """
    _ask.cache_clear()


@functools.cache
def _ask(urls: tuple[str, ...], key: str, user_agent: str) -> str | None:
    answers = []
    for url in urls:
        challenge = secrets.token_hex(16)
        try:
            response = httpx.get(
                url.rstrip("/") + PATH,
                params={"challenge": challenge},
                headers={"User-Agent": user_agent},
                timeout=_TIMEOUT,
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            answers.append(f"{url}: no answer ({type(error).__name__})")
            continue
        try:
            given = response.json().get("proof") if response.status_code == httpx.codes.OK else None
        except (ValueError, AttributeError):
            given = None
        if isinstance(given, str) and hmac.compare_digest(given.encode(), proof(key, challenge).encode()):
            return None
        answers.append(f"{url}: {response.status_code}{' with a wrong proof' if given else ''}")
    return f"no upstream proved {OPT_IN} ({'; '.join(answers)})"
