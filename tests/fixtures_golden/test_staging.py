"""staged_directory: all or nothing, and an existing directory survives a failed replacement."""

from __future__ import annotations

import os

import pytest

from hwsim.fixtures.manifest import FixtureError
from hwsim.fixtures.staging import staged_directory


def test_a_failure_while_filling_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_directory(tmp_path / "out", "export directory") as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("disk full, say")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_final_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:               # the new directory into place
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(FixtureError, match="cannot write the export directory"):
        with staged_directory(dest, "export directory") as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in dest.iterdir()] == ["old.txt"]


def test_refusal_keeps_the_destination(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("mine")

    def refuse(path):
        raise FixtureError(f"{path}: not ours")

    with pytest.raises(FixtureError, match="not ours"):
        with staged_directory(dest, "export directory", refuse) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (dest / "mine.txt").read_text() == "mine"
