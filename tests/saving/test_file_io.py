"""atomic_write: the target is replaced only by a complete, fsynced file; a failure leaves it untouched."""
from __future__ import annotations

import os

import pytest

from fastnn.saving.file_io import atomic_write


def _leftovers(folder, keep):
    return sorted(n for n in os.listdir(folder) if n != keep)


def test_writes_new_file(tmp_path):
    target = tmp_path / "a.bin"
    with atomic_write(target) as f:
        f.write(b"hello")
    assert target.read_bytes() == b"hello"
    assert _leftovers(tmp_path, "a.bin") == []


def test_text_mode(tmp_path):
    target = tmp_path / "a.json"
    with atomic_write(str(target), mode="w") as f:
        f.write("{\"é\": 1}")
    assert target.read_text(encoding="utf-8") == "{\"é\": 1}"


def test_replaces_existing_file_and_keeps_permissions(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_write(target) as f:
        f.write(b"new content")
    assert target.read_bytes() == b"new content"
    assert os.stat(target).st_mode & 0o777 == 0o640


def test_exception_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"partial")
            assert target.read_bytes() == b"old"  # not visible before the block ends
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, "a.bin") == []


def test_exception_on_new_file_creates_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_temp_file_is_in_the_same_folder(tmp_path):
    target = tmp_path / "a.bin"
    with atomic_write(target) as f:
        f.write(b"x")
        names = os.listdir(tmp_path)
        assert len(names) == 1 and names[0].startswith(".a.bin.") and names[0].endswith(".tmp")


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "a.bin"):
            pass
    with pytest.raises(IsADirectoryError):
        with atomic_write(tmp_path):
            pass
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "a", mode="ab"):
            pass
