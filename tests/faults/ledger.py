"""The campaign's tally: what was tried and what was survived, for ``docs/reliability.md``.

Every case adds to one process-wide counter; ``conftest.py`` prints it at the end of the session
and writes it to ``build/reliability.json`` so the figures in the docs come from a real run.
"""

import json

from collections import Counter
from pathlib import Path


TALLY: Counter[str] = Counter()

#: The order, and the words, the summary uses.
LABELS = {
    "cases": "cases run",
    "crashes": "crashes survived (SIGKILL or crash hook)",
    "faults": "injected upstream faults survived",
    "bad_inputs": "bad inputs tried (configs, environments, bodies)",
    "runs": "rotator processes run",
    "in_process_runs": "in-process runs (rotator.doors.cli.main called in the test process)",
    "engine_runs": "engine runs (rotator.engine.run.Engine over in-process transports, tests/engine)",
    "invariant_checks": "invariant checks passed",
    "bytes_scanned": "bytes scanned for token values",
    "leaks": "token values leaked",
    "lockouts": "lockouts (Infisical holding a token GitLab refuses)",
    "misdirected": "requests carrying a credential to a host it does not belong to",
}


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to ``name``."""
    TALLY[name] += amount


def summary() -> dict[str, int]:
    """Every label with its figure (zero when nothing counted it)."""
    return {label: TALLY[key] for key, label in LABELS.items()}


def write(path: Path) -> None:
    """Write the summary as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: TALLY[k] for k in LABELS}, indent=2) + "\n")
