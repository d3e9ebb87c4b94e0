"""``check``'s words for an upstream failure: what to fix, named as the user wrote it.

An upstream error says which route answered what; a person running a preflight wants to know
what to change. So:

* a refused credential names the variable it came from (``ROTATOR_GITLAB_TOKEN``, or
  ``ROTATOR_GITLAB_TOKEN_FILE`` when it was given as a file), and a refused Universal Auth login
  says it was not retried (Infisical locks the identity after three failures in 30 s); a refused
  Kubernetes Auth login says what to compare: the identity's Kubernetes Auth in Infisical (its
  allowed namespaces, names and audience, or its token reviewer) against the pod's service account;
* Infisical's own 404 for a connection names the config key (``targets[N].connection_id``), since
  the credentials worked: the id is wrong, or the identity may not read it;
* an upstream that could not be reached is named by its address alone (the adapters word it:
  ``cannot reach https://gitlab.example.com:443: connection refused``).

Once an upstream refused the credential or did not answer, every later item on it would only say
so again (and, unanswered, wait out a timeout each time): :meth:`Wording.blocking` says why, and
those items are skipped with one line pointing back.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from rotator.adapters.infisical import KUBERNETES_LOGIN_ROUTE, LOGIN_ROUTE, login_refused
from rotator.core.errors import ConnectionNotFoundError, InfisicalError, UpstreamError
from rotator.doors.environment import (
    GITLAB_TOKEN,
    INFISICAL_CLIENT_ID,
    INFISICAL_CLIENT_SECRET,
    INFISICAL_IDENTITY_ID,
    INFISICAL_KUBERNETES_TOKEN_FILE,
    INFISICAL_TOKEN,
    KUBERNETES_TOKEN_DEFAULT,
    given_as,
)


_NAMES = {"gitlab": "GitLab", "infisical": "Infisical"}
#: How both adapters begin the message of a connection never made (rotator.adapters.reach).
_UNREACHABLE = "cannot reach "
#: Infisical's error class for a bearer token that does not verify (malformed, expired): a 403.
_TOKEN_ERROR = "TokenError"  # noqa: S105 - an error class's name


@dataclass(frozen=True, slots=True)
class Wording:
    """The variables the credentials came from, as the environment gave them."""

    gitlab_token: str
    #: The static token's variable, the client id's and secret's, or the identity id's.
    infisical: tuple[str, ...]
    #: Kubernetes Auth: where the service-account token is read (its variable, or the default path).
    kubernetes_token: str | None = None

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> "Wording":
        """The names for ``environ`` (already validated by the runtime's build)."""
        static = INFISICAL_TOKEN in environ or f"{INFISICAL_TOKEN}_FILE" in environ
        kubernetes = INFISICAL_IDENTITY_ID in environ or f"{INFISICAL_IDENTITY_ID}_FILE" in environ
        gitlab = given_as(environ, GITLAB_TOKEN)
        if kubernetes and not static:
            where = (
                INFISICAL_KUBERNETES_TOKEN_FILE
                if INFISICAL_KUBERNETES_TOKEN_FILE in environ
                else KUBERNETES_TOKEN_DEFAULT
            )
            return cls(gitlab, (given_as(environ, INFISICAL_IDENTITY_ID),), where)
        names = (INFISICAL_TOKEN,) if static else (INFISICAL_CLIENT_ID, INFISICAL_CLIENT_SECRET)
        return cls(gitlab, tuple(given_as(environ, n) for n in names))

    def problem(self, error: UpstreamError, connection: str | None = None) -> str:
        """One line for ``error``: what to fix where that is known, else the error as it is.

        ``connection`` (``targets[N].connection_id: ID``) when the failed item read that connection.
        """
        said = f"{error.status}: {error.message}"
        if isinstance(error, ConnectionNotFoundError) and connection is not None:
            # Infisical's message only repeats the id; its status says whose answer this was.
            return f"{connection} not found in Infisical, or the identity may not read it ({error.status})"
        if refused_credential(error):
            return self._refused(error, said)
        if error.status is None and error.message.startswith(_UNREACHABLE):
            return error.message  # the address and the reason: all there is to say
        return str(error)

    def _refused(self, error: UpstreamError, said: str) -> str:
        if error.upstream == "gitlab":
            return f"GitLab refused the token in {self.gitlab_token} ({said}): fix {self.gitlab_token}"
        names = " and ".join(self.infisical)
        if error.route == KUBERNETES_LOGIN_ROUTE:
            return self._kubernetes_refused(error, said)
        if len(self.infisical) == 1:
            return f"Infisical refused the token in {names} ({said}): fix {names}"
        if error.route == LOGIN_ROUTE:
            # Infisical locks Universal Auth after three failed logins in 30 s (reference/infisical.md).
            return (
                f"Infisical refused the Universal Auth login with {names} ({said}): fix them;"
                " not retried: repeated failures lock the identity"
            )
        return f"Infisical refused the access token of the identity in {names} ({said})"

    def _kubernetes_refused(self, error: UpstreamError, said: str) -> str:
        """A refused Kubernetes Auth login, and which side to look at for the cause it names."""
        identity = self.infisical[0]
        token = self.kubernetes_token or KUBERNETES_TOKEN_DEFAULT
        if error.status == HTTPStatus.NOT_FOUND:
            fix = f"check {identity}, and that this identity has Kubernetes Auth in Infisical"
        elif error.message.startswith(("KubernetesTokenReviewer", "KubernetesConnection")):
            fix = (
                "Infisical could not review the token with the Kubernetes API: check the identity's"
                " Kubernetes host, CA and token reviewer JWT (system:auth-delegator)"
            )
        else:
            fix = (
                "compare the identity's Kubernetes Auth in Infisical (allowed namespaces, service"
                " account names, audience) with this pod's service account and its token's audience"
            )
        return (
            f"Infisical refused the Kubernetes Auth login of the identity in {identity} with the"
            f" service-account token in {token} ({said}): {fix}"
        )

    def blocking(self, error: UpstreamError) -> str | None:
        """Why later items on ``error``'s upstream are not checked, or ``None`` if they still can be."""
        name = _NAMES.get(error.upstream, error.upstream)
        if refused_credential(error):
            variables = self.gitlab_token if error.upstream == "gitlab" else " and ".join(self.infisical)
            return f"{name} refused {variables} (above)"
        if error.status is None and error.message.startswith(_UNREACHABLE):
            return f"{name} could not be reached (above)"
        if error.status is None:
            return f"{name} did not answer (above)"
        return None


def refused_credential(error: UpstreamError) -> bool:
    """Whether the upstream refused rotator's own credential (not a permission on one object)."""
    if error.status == HTTPStatus.UNAUTHORIZED:
        return True
    if isinstance(error, InfisicalError) and login_refused(error):
        return True
    return (
        error.upstream == "infisical"
        and error.status == HTTPStatus.FORBIDDEN
        and error.message.startswith(_TOKEN_ERROR)
    )
