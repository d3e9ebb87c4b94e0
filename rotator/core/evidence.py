"""What rotator learns from an upstream answer, a crash or the clock, as small values. Core: stdlib only.

Each class is one *kind* of evidence: the key, with the state it meets, of a transition in
:mod:`rotator.core.machine`. The fields are the facts the transition records (a hash, an id, a
time, the one-line note a closed rotation keeps); ``apply`` copies them onto the record. Whether
the state (step, outcome, role) changes is never the evidence's business: only the table says.

Rotation evidence carries ``at``, the time it was observed: a transition that closes the
rotation records it as ``finished_at``.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime

from rotator.core.model import RotationRecord, TokenRecord


# -- rotation evidence ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CreateAnswered:
    """GitLab answered the create with a token: its id and the server's ``expires_at``."""

    token_id: int
    expires_at: date | None
    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the new token's id, its expiry and when it was created."""
        return replace(r, new_token_id=self.token_id, expires_at=self.expires_at, created_at=self.at)


@dataclass(frozen=True, slots=True)
class ExpiryCapped:
    """A 400 "Expires at must be before D": nothing was created; ask once more for the last allowed day."""

    requested_expiry: date
    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the clamped expiry the second create asks for."""
        return replace(r, requested_expiry=self.requested_expiry)


@dataclass(frozen=True, slots=True)
class CreateRefused:
    """The create was refused before GitLab acted on it: nothing exists."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class CreateUnknown:
    """A 5xx, timeout or dropped answer to the create: a token may exist (or appear later)."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class SelfCheckPassed:
    """The new token read itself (``/personal_access_tokens/self``): right id, active."""

    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record when the PATCH is about to be sent."""
        return replace(r, pushing_at=self.at)


@dataclass(frozen=True, slots=True)
class SelfCheckFailed:
    """The new token did not prove itself within the window: it is never pushed."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class PatchStored:
    """Infisical answered the PATCH 200 with a new ``credentialsHash``: stored."""

    hash: str
    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the hash the PATCH returned and when."""
        return replace(r, patch_hash=self.hash, pushed_at=self.at)


@dataclass(frozen=True, slots=True)
class PatchRefused:
    """The PATCH was refused before Infisical's handler stored anything (a definite 4xx)."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record: the rotation goes back to CREATED, whose recovery revokes the token."""
        return r


@dataclass(frozen=True, slots=True)
class RefusalUndone:
    """After a refused PATCH, the never-held token was revoked (or marked "no access"): close as failed."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class PatchUnknown:
    """A 5xx, timeout or dropped answer to the PATCH: Infisical may hold the new token."""

    at: datetime
    line: str  # the upstream's answer as one line: the run's failure if the next push fails too

    @property
    def note(self) -> str:
        """What the closed rotation keeps."""
        return f"{self.line} (outcome unknown; token possibly held)"

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class PatchNotLanded:
    """A 200 whose hash is the pre-PATCH one: Infisical answered, yet does not hold our push."""

    at: datetime
    line: str

    @property
    def note(self) -> str:
        """What the closed rotation keeps: the line itself."""
        return self.line

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class RereadSame:
    """The re-read shows the hash the PATCH returned: the push is verified."""

    hash: str
    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the re-read hash and the verified time."""
        return replace(r, reread_hash=self.hash, verified_at=self.at)


@dataclass(frozen=True, slots=True)
class RereadLagging:
    """The re-read still shows the pre-PATCH hash: a lagging replica; read again."""

    hash: str
    at: datetime

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing is recorded for a lagging read."""
        return r


@dataclass(frozen=True, slots=True)
class RereadFailed:
    """The re-read failed, or kept lagging past its window: the rotation stays at PUSHED."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing is recorded: the next run re-reads."""
        return r


@dataclass(frozen=True, slots=True)
class RereadOther:
    """The re-read shows a third hash: someone else wrote the connection (drift)."""

    hash: str
    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the hash the re-read saw."""
        return replace(r, reread_hash=self.hash)


@dataclass(frozen=True, slots=True)
class RereadOverwritten:
    """Under ``--take-over``, a third hash means our push was overwritten: a fresh push follows."""

    hash: str
    at: datetime
    line: str

    @property
    def note(self) -> str:
        """What the closed rotation keeps: the line itself."""
        return self.line

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Record the hash the re-read saw."""
        return replace(r, reread_hash=self.hash)


@dataclass(frozen=True, slots=True)
class CrashFound:
    """A run found the rotation unfinished at its recorded step: the process that ran it is gone."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


@dataclass(frozen=True, slots=True)
class TargetRemoved:
    """The unfinished rotation's target is no longer configured: nothing more is pushed for it."""

    at: datetime
    note: str

    def apply(self, r: RotationRecord) -> RotationRecord:
        """Nothing to record beyond the closing note."""
        return r


RotationEvidence = (
    CreateAnswered
    | ExpiryCapped
    | CreateRefused
    | CreateUnknown
    | SelfCheckPassed
    | SelfCheckFailed
    | PatchStored
    | PatchRefused
    | RefusalUndone
    | PatchUnknown
    | PatchNotLanded
    | RereadSame
    | RereadLagging
    | RereadFailed
    | RereadOther
    | RereadOverwritten
    | CrashFound
    | TargetRemoved
)


# -- token evidence -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PushSent:
    """The PATCH carrying this token is about to be sent (PUSHING is recorded)."""

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Nothing to record: from now on the connection may hold it."""
        return t


@dataclass(frozen=True, slots=True)
class PushAnswered:
    """Infisical stored this token: the hash its PATCH returned."""

    hash: str

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record the push's hash."""
        return replace(t, push_hash=self.hash)


@dataclass(frozen=True, slots=True)
class PushRejected:
    """The PATCH carrying this token was refused before storage: it was never held."""

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Nothing to record: the token is a candidate again, to be revoked at once."""
        return t


@dataclass(frozen=True, slots=True)
class PushVerified:
    """A re-read showed this token's push: the connection holds it."""

    hash: str | None

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record the verified push's hash."""
        return replace(t, push_hash=self.hash)


@dataclass(frozen=True, slots=True)
class Retired:
    """A later push was verified (or the key was removed): revoke once ``revoke_after`` has passed."""

    at: datetime
    revoke_after: datetime
    by: str | None = None  # the rotation whose verified push retired it

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record when and by whom it was retired, and from when it may be revoked."""
        return replace(
            t, retired_at=self.at, revoke_after=self.revoke_after, retired_by=self.by or t.retired_by
        )


@dataclass(frozen=True, slots=True)
class RevokeProven:
    """GitLab's word that the token is revoked (204, a re-read, a 404 from a readable project)."""

    at: datetime
    evidence: str

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record when, and on what evidence."""
        return replace(t, revoked_at=self.at, evidence=self.evidence)


@dataclass(frozen=True, slots=True)
class NoAccess:
    """The manager may no longer act on the project's tokens: the token may be live; keep it, retry."""

    at: datetime

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record since when (kept from the first time), and make it due for every run."""
        return replace(
            t, revoke_after=t.revoke_after or self.at, no_access_since=t.no_access_since or self.at
        )


@dataclass(frozen=True, slots=True)
class ExpiredUnrevoked:
    """A "no access" token whose own ``expires_at`` has passed: it is dead, and was never revoked."""

    evidence: str

    def apply(self, t: TokenRecord) -> TokenRecord:
        """Record why it is closed without a revoke."""
        return replace(t, evidence=self.evidence)


TokenEvidence = (
    PushSent
    | PushAnswered
    | PushRejected
    | PushVerified
    | Retired
    | RevokeProven
    | NoAccess
    | ExpiredUnrevoked
)
