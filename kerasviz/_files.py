"""Writing files and folders so that a reader never sees half of one.

Every writer of kerasviz (dataset jobs, feature files, the projector export, the report) writes
to a hidden temporary name beside the target and renames it into place: a rename within one
folder is atomic, so the target is either the old complete file or the new complete one, also
when the process is killed half way. No Keras here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".kvtmp"  # temporary files end so; a later run may delete strays of a killed one


def staged(path: Path, write: Callable) -> Path:
    """Write through ``write(binary file)`` to a hidden temporary file beside ``path``.

    Returns the temporary file's path, for `os.replace` onto ``path`` once everything that
    belongs together is written. The parent folder is created; a failed ``write`` leaves no
    temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, write: Callable) -> None:
    """Write ``path`` through ``write(binary file)``: the old file or the new one, never half.

    >>> atomic_write(Path("out/a.json"), lambda f: f.write(b"{}"))
    """
    os.replace(staged(path, write), path)


def replace_folder(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing a folder already there.

    The old ``target`` is renamed aside first and deleted only after ``tmp`` took its place;
    if that rename fails, the old folder is put back, so ``target`` is never lost.
    """
    if not target.exists():
        os.rename(tmp, target)
        return
    old = tmp.with_name(tmp.name + ".old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
