"""The engine and the core read time only through what they are given: the clocks and sleep are injected."""

import ast
import threading
import time

from pathlib import Path

import pytest

import rotator

from rotator.doors.wiring import _Scaled


PACKAGES = ("core", "engine")
#: Reading or waiting on the real time: the engine asks ``ctx.clock``, ``ctx.monotonic``, ``ctx.sleep``.
FORBIDDEN_CALLS = frozenset(
    {
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "monotonic_ns"),
        ("time", "perf_counter"),
        ("time", "perf_counter_ns"),
        ("time", "sleep"),
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
    }
)


def _sources() -> list[Path]:
    root = Path(rotator.__file__).parent
    return sorted(p for package in PACKAGES for p in (root / package).rglob("*.py"))


def _real_time_uses(tree: ast.AST) -> list[str]:
    """Every call such as ``time.monotonic()`` or ``datetime.now(UTC)``, and every import of ``time``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if (name, node.func.attr) in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {name}.{node.func.attr}()")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import time" for a in node.names if a.name == "time"]
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found.append(f"line {node.lineno}: from time import ...")
    return found


def test_the_scan_sees_each_way_of_reading_the_time() -> None:
    """The scan itself: it flags the calls and imports it is meant to keep out."""
    source = (
        "import time\nfrom time import monotonic\nimport datetime as dt\n"
        "a = time.monotonic()\nb = datetime.now(UTC)\nc = dt.datetime.now()\nd = date.today()\n"
        "e = self.ctx.monotonic()\nf = datetime.combine(d, time(0), UTC)\n"
    )
    assert [line.split(": ")[1] for line in _real_time_uses(ast.parse(source))] == [
        "import time",
        "from time import ...",
        "time.monotonic()",
        "datetime.now()",
        "datetime.now()",
        "date.today()",
    ]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_real_clock_or_sleep_in_the_engine_or_the_core(path: Path) -> None:
    """No ``time.monotonic()``, ``time.time()``, ``datetime.now()`` or sleep: each comes through Context."""
    assert _real_time_uses(ast.parse(path.read_text(), str(path))) == []


def test_a_scaled_sleep_counts_in_full_on_the_monotonic_clock() -> None:
    """Scale 0.001: a 10 s sleep takes about 10 ms, and the monotonic clock moves on by 10 s."""
    scaled = _Scaled(0.001)
    start, real = scaled.monotonic(), time.monotonic()
    scaled.sleep(10.0)
    assert time.monotonic() - real < 1.0
    assert 10.0 <= scaled.monotonic() - start < 11.0


def test_the_self_check_window_passes_after_its_full_count_of_polls() -> None:
    """A 10 s deadline polled every second, as the self-check does: ten polls, a few ms of real time."""
    scaled = _Scaled(0.001)
    real = time.monotonic()
    deadline, polls = scaled.monotonic() + 10.0, 0
    while scaled.monotonic() < deadline:
        scaled.sleep(1.0)
        polls += 1
    assert polls == 10
    assert time.monotonic() - real < 1.0


def test_each_thread_counts_only_its_own_sleeps() -> None:
    """Two targets polling at once: one's skipped time does not shorten the other's window."""
    scaled = _Scaled(0.001)
    before = scaled.monotonic()
    worker = threading.Thread(target=scaled.sleep, args=(100.0,))
    worker.start()
    worker.join()
    assert scaled.monotonic() - before < 1.0
