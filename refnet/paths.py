"""Output paths checked before any work (``train``, ``evaluate`` and ``reproduce`` ``--out``,
state dict and bundle files through :func:`refnet.statedict.check_destination`).

A run that computes for an hour and then cannot write its result wastes the hour, and a
half-done write (tensors without their metadata file) is worse; so an output path is checked
up front by :func:`check_output_path`, the one place that says what "cannot be written" means.
An input file is looked at by :func:`file_problem` (the command line's file flags, sweep specs
and stores): one stat, whose failure is a message, not an OSError holding the whole path.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

__all__ = ["check_output_path", "check_output_folder", "file_problem", "short_path",
           "broken_link_problem"]

#: The most characters of a path a message shows (a 3000-character path would bury it).
SHOWN_PATH_CHARS = 120


def short_path(path) -> str:
    """``path`` as a message shows it: whole up to :data:`SHOWN_PATH_CHARS` characters, else
    its beginning and end around "..." (the end names the file)."""
    text = str(path)
    if len(text) <= SHOWN_PATH_CHARS:
        return text
    half = (SHOWN_PATH_CHARS - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


#: Why a path holding a NUL character cannot be used (no file system takes one; pathlib's
#: exists() says False for it, so the checks passed and the write at the end failed).
NUL_IN_NAME = "a NUL character in the name"

#: What :func:`file_problem` says of a path where nothing is.
NO_SUCH_FILE = "no such file"


def file_problem(path) -> str | None:
    """Why ``path`` cannot be read as a file, as a message says it, or None if it can:
    :data:`NO_SUCH_FILE`, "is a folder, not a file", "not a regular file" (a device, a pipe)
    or "cannot be used (<the system's reason>)" (a name too long, a symlink loop, a NUL
    character). One stat,
    not is_file: that raises OSError for a name too long, whose text holds the whole path."""
    try:
        mode = Path(path).stat().st_mode
    except OSError as e:
        return (NO_SUCH_FILE if e.errno in (errno.ENOENT, errno.ENOTDIR)
                else f"cannot be used ({e.strerror or e})")
    except ValueError:  # Python's "embedded null byte", naming no file
        return f"cannot be used ({NUL_IN_NAME})"
    if stat.S_ISREG(mode):
        return None
    return "is a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file"


def broken_link(path) -> Path | None:
    """The first of ``path`` and the folders above it that is a symbolic link leading nowhere
    (its target missing, or links in a loop), or None. ``exists()`` says False for such a link
    as for a free name, so the checks passed, and creating the folder (or a file under it)
    after the work failed with "File exists" or "Too many levels of symbolic links"."""
    for p in (Path(path), *Path(path).parents):
        if p.exists():  # resolved: so are the folders above it
            return None
        if p.is_symlink():
            return p
    return None


def broken_link_problem(path, *, itself: bool = True) -> str | None:
    """What :func:`broken_link` found at or above ``path``, as a message says it, or None;
    ``itself=False`` looks only above it (a file that is a broken link is replaced by a write,
    a folder that is one cannot be created)."""
    link = broken_link(path)
    if link is None or (not itself and link == Path(path)):
        return None
    try:
        target = os.readlink(link)
    except OSError:  # removed since: say what was seen
        target = "?"
    where = "is" if link == Path(path) else f"lies under {short_path(link)}, which is"
    return (f"{short_path(path)} {where} a symbolic link to {short_path(target)} that leads "
            "nowhere (its target is missing, or the links form a loop); give another path, "
            "or fix or remove the link")


def check_output_path(path, flag: str | None = None, *, folder: bool = False,
                      beside: Mapping | None = None, inputs: Mapping | None = None) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written.

    ``folder``: ``path`` is a folder to write into (created if missing), else a file. Refused:
    a folder where a file is wanted or the reverse, an existing non-regular file (a device, a
    pipe) where a file is wanted, a path under an existing file, a nearest existing folder
    without write permission, a path the file system refuses to look up (a name too long, a
    symlink loop, a NUL character: shown shortened by :func:`short_path`), and a folder to
    create, or one above the path, that is a broken symbolic link (:func:`broken_link`: the
    write after the work failed on it). ``beside`` maps further files written next to ``path``
    (e.g. an ``.npz``'s metadata file) to what they are; each is checked as a file too.
    ``inputs`` maps the files the same command reads (``None``
    entries are skipped) to what they are (a flag); an output file that is one of them is
    refused, since writing it would replace what the command reads (``train --data-npz d.npz
    --out d.npz`` overwrote the training data with the model).
    Raises :class:`~refnet.errors.ConfigError` naming the path, what is wrong and what to do,
    led by the command-line ``flag`` if given. Returns ``path`` as a :class:`Path`.
    """
    path = Path(path)
    lead = f"{flag}: " if flag else ""
    for name in (path, *(beside or {})):
        if "\x00" in str(name):
            raise ConfigError(f"{lead}{short_path(repr(str(name)))} cannot be used ({NUL_IN_NAME}); "
                              "give another path")
    try:
        _check_kinds(path, lead, folder, beside)
        if not folder:
            _check_not_input(path, lead, beside, inputs)
    except OSError as e:  # a name too long, a symlink loop, a folder that may not be searched
        name = path if e.filename is None else e.filename  # a file beside it, maybe
        raise ConfigError(f"{lead}{short_path(name)} cannot be used ({e.strerror or e}); give "
                          "another path") from None
    return path


def check_output_folder(path, flag: str | None = None, *, folders=(), files=()) -> Path:
    """:func:`check_output_path` of the folder ``path`` and of what a command writes in it:
    the sub-folders named ``folders`` and the files named ``files``. In an existing folder, a
    file where a sub-folder goes (or a folder where a file goes) failed the write after the
    work ("File exists", "Is a directory"), naming no flag."""
    path = check_output_path(path, flag, folder=True)
    for name in folders:
        check_output_path(path / name, flag, folder=True)
    for name in files:
        check_output_path(path / name, flag)
    return path


def _check_kinds(path: Path, lead: str, folder: bool, beside: Mapping | None) -> None:
    """check_output_path's checks; the file system's own errors (OSError) pass through."""
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{lead}{path} is a file; give a folder (created if missing)")
    problem = broken_link_problem(path, itself=folder)
    if problem is not None:
        raise ConfigError(f"{lead}{problem}")
    files = ([] if folder else [(path, "")]) + [
        (Path(p), f" ({what} written beside {path.name})") for p, what in (beside or {}).items()]
    for target, role in files:
        if target.is_dir():
            raise ConfigError(f"{lead}{target}{role} is a folder; give a file name (or remove "
                              "the folder)")
        if target.exists() and not target.is_file():
            raise ConfigError(f"{lead}{target}{role} exists and is not a regular file; give "
                              "another file name (or remove it)")
    candidates = path.absolute().parents  # a file's own folder first; a folder itself first
    existing = next(p for p in ((path.absolute(), *candidates) if folder else candidates)
                    if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{lead}{path} lies under the file {existing}: {existing.name} is a "
                          f"file, not a folder, and cannot hold {'a folder' if folder else 'files'}"
                          "; give another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{lead}{path}: cannot write in the folder {existing} (permission "
                          "denied); give a writable path")


def _check_not_input(path: Path, lead: str, beside: Mapping | None,
                     inputs: Mapping | None) -> None:
    """check_output_path's refusal of an output file that is one of the command's ``inputs``;
    the file system's own errors (OSError) pass through."""
    for target in (path, *(Path(p) for p in (beside or {}))):
        for source, what in (inputs or {}).items():
            if source is not None and _same_file(target, Path(source)):
                raise ConfigError(f"{lead}{target} is also the {what} file, which this command "
                                  "reads: writing it would replace it; give another path")


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode if both exist (a link, another
    spelling of the path), else the same absolute path (two outputs not written yet)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.normpath(a.absolute()) == os.path.normpath(b.absolute())
