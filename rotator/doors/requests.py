"""HTTP trigger requests as ``GET /v1/rotations/{id}`` shows them, made from the journal's records.

A request (:class:`rotator.core.model.TriggerRequest`) lives in the journal, so every replica
sharing it answers for every request, and one that outlives the replica that accepted it is taken
over by another (:mod:`rotator.doors.daemon`). This module only turns records into answers.
"""

from dataclasses import dataclass, replace
from typing import Any

from rotator.core.durations import stamp_or_none
from rotator.core.model import Outcome, RequestStatus, RotationRecord, TriggerRequest


#: A journal rotation as a request lists it: (id, outcome, step, new token id).
Reference = tuple[str, str, str, int | None]


@dataclass(frozen=True, slots=True)
class TriggeredRun:
    """One trigger request as the API answers it."""

    request: TriggerRequest

    @property
    def id(self) -> str:
        """The request's id (``/v1/rotations/{id}``)."""
        return self.request.id

    def as_json(self) -> dict[str, Any]:
        """The JSON body."""
        r = self.request
        return {
            "id": r.id,
            "target": r.target,
            "status": r.status.value,
            "requested_at": stamp_or_none(r.requested_at),
            "started_at": stamp_or_none(r.started_at),
            "finished_at": stamp_or_none(r.finished_at),
            "outcome": r.outcome,
            "failed": r.failed,
            "detail": r.detail,
            "rotations": [
                {"id": id_, "outcome": outcome, "step": step, "new_token_id": new}
                for id_, outcome, step, new in r.rotations
            ],
            "coalesced": r.coalesced,
            "next_trigger_at": stamp_or_none(r.next_trigger_at),
        }


def reference(rotation: RotationRecord) -> Reference:
    """A journal rotation as a request lists it."""
    return rotation.id, rotation.outcome.value, rotation.step.value, rotation.new_token_id


def described(request: TriggerRequest, rotation: RotationRecord) -> TriggerRequest:
    """``request`` with its outcome set from the finished journal ``rotation`` it stands for."""
    succeeded = rotation.outcome is Outcome.SUCCEEDED
    return replace(
        request, outcome="done" if succeeded else "failed", failed=not succeeded, detail=rotation.error
    )


def made_up(target: str, rotation: RotationRecord) -> TriggerRequest:
    """A finished request standing for a forced rotation no request planned, known by the rotation's id.

    ``rotator rotate``'s rotations, an older rotator's, or one whose request was pruned: a
    coalesced answer names it, and the daemon records this so every replica answers for that id.
    """
    made = TriggerRequest(
        rotation.id,
        target,
        rotation.planned_at,
        status=RequestStatus.FINISHED,
        started_at=rotation.planned_at,
        finished_at=rotation.finished_at,
        rotations=(reference(rotation),),
    )
    return described(made, rotation)
