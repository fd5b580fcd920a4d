"""Writing into place: whole folders replaced only when they hold nothing but kerasviz's files,
the working folder filled in place, and new files and folders readable by others."""

import json
import os

import pytest

from kerasviz import _files


def _build(target, files):
    tmp = _files.temp_folder(target)
    for rel, text in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return tmp


def test_replace_keeps_foreign_files_and_lists_its_own(tmp_path):
    target = tmp_path / "out"
    _files.replace_folder(_build(target, {"index.html": "1", "img/a.png": "a"}), target)
    marker = json.loads((target / _files.MARKER).read_text())
    assert marker["files"] == ["img/a.png", "index.html"]
    assert (target.stat().st_mode & 0o777) == 0o777 & ~_umask()
    (target / "img" / "mine.txt").write_text("mine")
    tmp = _build(target, {"index.html": "2"})
    with pytest.raises(FileExistsError, match=r"did not write \(img/mine\.txt\)"):
        _files.replace_folder(tmp, target)
    assert (target / "index.html").read_text() == "1" and (target / "img/mine.txt").exists()
    with pytest.raises(FileExistsError, match="did not write"):
        _files.check_replaceable(target, True, "--force")
    with pytest.raises(FileExistsError, match="pass --force"):
        _files.check_replaceable(target, False, "--force")
    (target / "img" / "mine.txt").unlink()
    _files.replace_folder(tmp, target)
    assert _files.files_below(target) == [_files.MARKER, "index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


def test_the_working_folder_is_filled_in_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    here = tmp_path
    _files.check_replaceable(here, False, "--force")  # empty: fine without --force
    _files.replace_folder(_build(".", {"index.html": "1", "img/a.png": "a"}), here)
    assert _files.files_below(here) == [_files.MARKER, "img/a.png", "index.html"]
    _files.check_replaceable(here, True, "--force")
    _files.replace_folder(_build(".", {"index.html": "2", "img/b.png": "b"}), here)
    assert _files.files_below(here) == [_files.MARKER, "img/b.png", "index.html"]
    assert (here / "index.html").read_text() == "2" and os.getcwd() == str(here)
    (here / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        _files.check_replaceable(here, True, "--force")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
