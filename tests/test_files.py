"""Reading the files rotator is pointed at: only regular files, only up to a bound, never a hang."""

import os
import tempfile

from pathlib import Path

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.errors import ConfigError
from rotator.doors.files import read_text_file, size_text


KEY = "ROTATOR_GITLAB_TOKEN_FILE"


def _read(path: Path | str, limit: int = 64 * 1024) -> str:
    return read_text_file(str(path), key=KEY, limit=limit, what="a secret file")


def _refusal(path: Path | str, limit: int = 64 * 1024) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        _read(path, limit)
    assert raised.value.key == KEY
    return raised.value


def test_a_regular_file_and_a_symlink_to_one_are_read(tmp_path: Path) -> None:
    """A regular file is read whole; a symlink to one (a Kubernetes secret mount) is followed."""
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "token").write_text("glpat-secret\n")
    (tmp_path / "token").symlink_to(tmp_path / "..data" / "token")
    assert _read(tmp_path / "..data" / "token") == "glpat-secret\n"
    assert _read(tmp_path / "token") == "glpat-secret\n"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory is named as one, not read."""
    assert "is a directory, not a regular file" in _refusal(tmp_path).problem


def test_a_character_device_is_refused_without_reading_it() -> None:
    """/dev/zero (endless bytes) is refused before a single byte is read, not a MemoryError."""
    assert "/dev/zero: is a character device, not a regular file" in _refusal("/dev/zero").problem


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """A FIFO nobody writes to is refused at once instead of blocking the open forever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in _refusal(fifo).problem


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    """Following a symlink does not let it smuggle in what a plain path could not."""
    (tmp_path / "link").symlink_to("/dev/zero")
    assert "is a character device" in _refusal(tmp_path / "link").problem


@given(size=st.integers(0, 300), limit=st.integers(1, 200))
def test_a_file_is_read_only_up_to_the_bound(size: int, limit: int) -> None:
    """A file of at most ``limit`` bytes is read whole; one byte more is refused naming the bound."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "file"
        path.write_bytes(b"x" * size)
        if size <= limit:
            assert _read(path, limit) == "x" * size
        else:
            problem = _refusal(path, limit).problem
            assert f"is larger than {size_text(limit)}, the most rotator reads from a secret file" in problem


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_file_that_understates_its_size_is_still_bounded() -> None:
    """A /proc file reports size 0 yet has bytes: the bound holds on what is read, not on st_size."""
    status = Path("/proc/self/status")
    text = status.read_text()
    assert status.stat().st_size == 0
    assert "is larger than 16 bytes" in _refusal("/proc/self/status", limit=16).problem
    assert len(text) > 16


def test_bounds_are_named_in_units_people_read() -> None:
    """The limits print as 64 KiB and 1 MiB, odd sizes in bytes."""
    assert [size_text(n) for n in (64 * 1024, 1024 * 1024, 100)] == ["64 KiB", "1 MiB", "100 bytes"]
