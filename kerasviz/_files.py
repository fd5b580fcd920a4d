"""Writing files and folders so that a reader never sees half of one.

Every writer of kerasviz (dataset jobs, feature files, the projector export, the report) writes
to a hidden temporary name beside the target and renames it into place: a rename within one
folder is atomic, so the target is either the old complete file or the new complete one, also
when the process is killed half way. No Keras here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

TMP_SUFFIX = ".kvtmp"  # temporary files end so; a later run may delete strays of a killed one
# A folder kerasviz writes as a whole (a report, a projector export) names its files here, so
# that a later run replaces it only when nothing else was put in it.
MARKER = ".kerasviz.json"


def _mode(kind: str) -> int:
    """Permissions of a new file or folder under the process umask (0644 / 0755 usually)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o666 if kind == "file" else 0o777) & ~umask


def files_below(folder: Path) -> list[str]:
    """Every file below ``folder`` as a sorted POSIX path relative to it."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def foreign_files(folder: Path, ours: Callable[[str], bool] | None = None) -> list[str]:
    """Files below ``folder`` that kerasviz did not write: not named by the folder's marker,
    not accepted by ``ours(relative path)``, and not a stray temporary file of a killed run."""
    folder = Path(folder)
    named: set[str] = set()
    marker = folder / MARKER
    if marker.is_file():
        try:
            named = set(json.loads(marker.read_text()).get("files", []))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
            named = set()
        named.add(MARKER)
    return [
        rel
        for rel in files_below(folder)
        if rel not in named
        and not rel.split("/")[0].endswith(TMP_SUFFIX)  # a stray, or a folder being built
        and not rel.endswith(TMP_SUFFIX)
        and not (ours is not None and ours(rel))
    ]


def describe_files(names: Iterable[str], shown: int = 3) -> str:
    """``"a.txt, b/c.png and 4 more"``."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_replaceable(
    target: Path, force: bool, flag: str, ours: Callable[[str], bool] | None = None
) -> None:
    """Refuse early what `replace_folder` would refuse late: an existing ``target`` without
    ``force`` (``flag`` names the option, e.g. ``"--force (force=True)"``), a file, or a folder
    holding files kerasviz did not write (they are never deleted)."""
    target = Path(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; choose another folder")
    if not any(target.iterdir()):
        return
    if not force:
        raise FileExistsError(f"{target} exists; pass {flag} to replace it")
    foreign = foreign_files(target, ours)
    if foreign:
        raise FileExistsError(
            f"{target} holds files kerasviz did not write ({describe_files(foreign)}); they "
            "are not deleted: choose another folder or move them"
        )


def is_current_folder(target: Path) -> bool:
    """Whether ``target`` is the working folder (``--out .``), which is never renamed."""
    return Path(target).resolve() == Path.cwd().resolve()


def temp_folder(target: Path, suffix: str = "") -> Path:
    """A new hidden folder to build ``target`` in, readable like any new folder
    (`tempfile.mkdtemp` makes it 0700): beside ``target``, or inside it when ``target`` is
    the working folder."""
    target = Path(target)
    if is_current_folder(target):
        tmp = Path(tempfile.mkdtemp(prefix=".kerasviz-", suffix=suffix + TMP_SUFFIX, dir=target))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent))
    tmp.chmod(_mode("folder"))
    return tmp


def _move_into(tmp: Path, target: Path, ours: Callable[[str], bool] | None) -> None:
    """`replace_folder` for the working folder: our old files go, then ``tmp``'s entries move
    in one by one (not atomic as a whole; nothing else in the folder is touched)."""
    tmp, target = tmp.resolve(), target.resolve()
    inside = tmp.name if tmp.parent == target else None
    foreign = set(foreign_files(target, ours))  # empty: replace_folder refused them already
    for rel in files_below(target):
        if rel not in foreign and rel.split("/")[0] != inside and not rel.endswith(TMP_SUFFIX):
            (target / rel).unlink()
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
        if inside not in folder.relative_to(target).parts and not any(folder.iterdir()):
            folder.rmdir()
    for entry in tmp.iterdir():
        os.replace(entry, target / entry.name)
    tmp.rmdir()


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


def replace_folder(tmp: Path, target: Path, ours: Callable[[str], bool] | None = None) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing a folder already there.

    ``tmp`` gets a marker naming its files. A ``target`` holding files kerasviz did not write
    (not named by its marker nor accepted by ``ours(relative path)``, for folders written
    before markers) is refused with `FileExistsError` and left as it is. The old
    ``target`` is renamed aside first and deleted only after ``tmp`` took its place; if that
    rename fails, the old folder is put back, so ``target`` is never lost.
    """
    tmp, target = Path(tmp), Path(target)
    listed = [rel for rel in files_below(tmp) if rel != MARKER]
    (tmp / MARKER).write_text(json.dumps({"writer": "kerasviz", "files": listed}, indent=1))
    if target.exists():
        foreign = foreign_files(target, ours) if target.is_dir() else [target.name]
        if foreign:
            raise FileExistsError(
                f"{target} holds files kerasviz did not write ({describe_files(foreign)}); "
                "they are not deleted: choose another folder or move them"
            )
    if target.exists() and is_current_folder(target):
        _move_into(tmp, target, ours)
        return
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
