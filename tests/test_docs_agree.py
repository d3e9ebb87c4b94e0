"""The docs list what the code has: every command in README's table, every metric with its labels."""

import argparse
import re

from pathlib import Path

from rotator.doors.cli import build_parser
from rotator.engine.recorder import STEP_OF
from tests.metrics_sample import every_series


ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(f"{heading}\n")
    return re.split(r"\n#{1,6} ", text[start + len(heading) :], maxsplit=1)[0]


def _first_cells(section: str) -> list[str]:
    """The first cell of each body row of the first Markdown table in ``section``."""
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows]


def _commands() -> set[str]:
    """Every command the parser knows."""
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001 - argparse offers no public walk
    return set(sub.choices)


def _exported() -> dict[str, set[str]]:
    """Every series a daemon's /metrics shows (counters with ``_total``), and its labels."""
    metrics = every_series()
    return {
        family.name + ("_total" if family.type == "counter" else ""): {
            label for sample in family.samples for label in sample.labels if label != "le"
        }
        for family in metrics.registry.collect()
    }


def test_readme_command_table_lists_every_command() -> None:
    """README's "Commands and exit codes" table has a row for each command the parser has, and no other."""
    cells = _first_cells(_section(README, "## Commands and exit codes"))
    listed = {word for cell in cells for word in re.findall(r"`([a-z-]+)", cell.replace("` / `", "` `"))}
    assert listed == _commands()


def test_readme_metrics_table_is_what_the_daemon_exports() -> None:
    """README's Metrics table: each exported metric once, with its type's suffix and its labels."""
    rows = [line for line in _section(README, "### Metrics").splitlines() if line.startswith("| `")]
    documented = {}
    for row in rows:
        name, _kind, labels = (cell.strip() for cell in row.strip("|").split("|")[:3])
        documented[name.strip("`")] = {label.strip() for label in labels.split(",") if label.strip()}
    assert documented == _exported()


def test_operations_names_every_metric_with_its_labels() -> None:
    """docs/operations.md's metrics paragraph names each metric with all of its labels."""
    paragraph = OPERATIONS[OPERATIONS.index("Metrics (daemon only") :].split("\n\n", 1)[0]
    named: dict[str, set[str]] = {}
    for name, labels in re.findall(r"`(rotator_\w+)(?:\{([a-z_,]+)\})?`", paragraph):
        named.setdefault(name, set(labels.split(",")) if labels else set())  # the list, not later mentions
    assert named == _exported()


def test_operations_lists_every_step_an_alert_names() -> None:
    """The Alerts section's step vocabulary has every step the engine names, none a journal state."""
    sentence = OPERATIONS[OPERATIONS.index("`step` is the call that failed") :].split("; the log", 1)[0]
    listed = set(re.findall(r"`([a-z-]+)`", sentence))
    assert set(STEP_OF.values()) | {"prepare", "resolve", "adopt", "resume", "forget"} <= listed
    assert not re.search(r"`[A-Z]+`", sentence), sentence
