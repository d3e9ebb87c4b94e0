"""The status/history read model: one shape for `status --json`, `history --json` and /v1/targets."""

import json

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml

from hypothesis import given
from hypothesis import strategies as st

from rotator.adapters.metrics import Metrics
from rotator.core.redact import redact_tree
from rotator.core.secret import Secret
from rotator.doors import readmodel, wiring
from rotator.doors.daemon import Daemon
from rotator.doors.web import Server, create_app
from rotator.testing import Fakes
from tests.cli_harness import Harness


API_TOKEN = "test-api-token"
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"
_TEXT = st.text(alphabet=st.sampled_from("ab-_:/@ glpat-ABCDEFGHIJKLMNOPQRST0123456789\n\x1b"), max_size=40)


@given(st.builds(readmodel.Status, as_of=_TEXT) | st.from_type(readmodel.Status))
def test_shown_redacts_like_redact_tree_over_the_json(status: readmodel.Status) -> None:
    """Redacting the values, then printing, equals printing, then redacting the JSON (target names kept)."""
    assert readmodel.as_json(readmodel.shown(status)) == redact_tree(
        readmodel.as_json(status), keep={"target"}
    )


@given(st.from_type(readmodel.HistoryRow))
def test_as_json_keys_follow_the_declaration(row: readmodel.HistoryRow) -> None:
    """A history row's JSON has the declared fields in order, and its retired tokens as a list."""
    document = readmodel.as_json(row)
    assert list(document) == list(readmodel.HistoryRow.__dataclass_fields__)
    assert isinstance(document["retired"], list)


@contextmanager
def _serving(h: Harness) -> Iterator[httpx.Client]:
    """The daemon's HTTP API over the harness's journal (nothing scheduled: it only reads)."""
    environ = h.environment()
    config = wiring.load(str(h.folder / "rotator.yaml"), environ)
    metrics = Metrics()
    rt = wiring.build(config, environ, observers=(metrics,), on_response=metrics.on_response)
    server = Server(
        create_app(Daemon(rt, metrics, trigger_enabled=False), metrics.registry, Secret(API_TOKEN)),
        "127.0.0.1",
        0,
    )
    server.start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
        ) as client:
            yield client
    finally:
        server.stop()
        rt.close()


def _repoint_first_target(h: Harness) -> None:
    """Point app-deploy at the second project: its old journal key becomes a removed one."""
    path = h.folder / "rotator.yaml"
    document = yaml.safe_load(path.read_text())
    target = document["targets"][0]
    target["project"] = h.fakes.seed.project_paths[1]
    del target["adopt_token_id"]
    path.write_text(yaml.safe_dump(document))


def _without_as_of(document: dict[str, Any], *nows: str) -> dict[str, Any]:
    """The document without ``as_of``, and each of ``nows`` written as ``<now>`` wherever it appears.

    The CLI and the server read the journal at two instants, which may straddle a second: a
    target due now has ``next_due`` (and a ``would`` naming it) equal to its document's
    ``as_of``. Both documents' ``as_of`` are replaced in both, so that moment compares as "now",
    and a recorded time that happens to fall in the first document's second (the last rotation's)
    is replaced in both alike.
    """
    text = json.dumps({key: value for key, value in document.items() if key != "as_of"})
    for now in nows:
        text = text.replace(f'"{now}"', '"<now>"').replace(now, "<now>")
    return cast("dict[str, Any]", json.loads(text))


@pytest.mark.slow
def test_status_json_and_v1_targets_agree_field_for_field(fakes: Fakes, tmp_path: Path) -> None:
    """One journal (pending revokes, a failure, a removed key): the CLI's and the API's documents agree."""
    h = Harness(fakes, tmp_path)
    assert h.run("run-once").code == 0
    _repoint_first_target(h)
    fakes.infisical.faults.fail(PATCH, 400, body={"message": "refused: glpat-ABCDEFGHIJKLMNOPQRST"})
    assert h.run("run-once", "--force").code == 1
    fakes.infisical.faults.clear()
    cli = h.run("status", "--json")
    assert cli.code == 1, cli.stderr
    with _serving(h) as client:
        answer = client.get("/v1/targets")
        rows = {
            row["target"]: client.get(f"/v1/targets/{row['target']}").json() for row in cli.json()["targets"]
        }
    assert answer.status_code == 200
    expected, served = cli.json(), answer.json()
    assert list(served) == list(expected)  # the same fields, in the same order
    nows = (served["as_of"], expected["as_of"])
    assert _without_as_of(served, *nows) == _without_as_of(expected, *nows), json.dumps(
        [served, expected], indent=1
    )
    assert expected["removed"], "the re-pointed target's old key is reported"
    assert any(row["failing"] and row["last_error"] for row in expected["targets"])
    assert "glpat-ABCDEFGHIJKLMNOPQRST" not in answer.text + cli.stdout
    assert rows == {row["target"]: row for row in served["targets"]}
