"""Writing evidence files safely: atomic, never through a symlink, owner and group only.

Every file of a bundle (``<output_dir>/<incident_id>/``) is written here. A file is written to a
temporary name in its folder and renamed over the target, so a reader (or a crash) sees the old
file or the new one, never half of one; the rename replaces a symlink planted at the target
instead of writing through it. Folders are walked one component at a time from the incident
folder with ``O_NOFOLLOW``: a symlinked folder (``plots -> /elsewhere``) or a symlinked
incident folder is refused with ``OSError`` (errno ``ELOOP``) naming it. Files are 0640 and
folders 0750 whatever the umask, because the bundle may hold what only the team should read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "RESERVE_NAME",
    "append_text",
    "evidence_dir",
    "release_room",
    "remove_file",
    "reserve_room",
    "symlinks_in",
    "write_bytes",
    "write_text",
]

FILE_MODE = 0o640
DIR_MODE = 0o750

# Room kept for the end of a run (the record and the manifest), released just before they
# are written: a disk that fills up during the run must still take the run's own account.
RESERVE_NAME = ".ending-reserve"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(rel: str | PurePosixPath) -> list[str]:
    """The components of a path inside the bundle; refuses absolute paths and ``..``."""
    path = PurePosixPath(rel)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise ValueError(f"evidence path must be relative and inside the bundle: {rel!r}")
    return [part for part in path.parts if part != "."]


def _refused(path: Path) -> OSError:
    return OSError(errno.ELOOP, "refusing to follow a symlink in the evidence folder", str(path))


def _open_dir(name: str, *, dir_fd: int | None, shown: Path) -> int:
    """Open (creating, mode 0750) one folder without following a symlink."""
    try:
        os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
        created = True
    except FileExistsError:
        created = False
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(shown):
            raise _refused(shown) from err
        raise
    # mkdir's mode is cut by the umask, and a folder from an older run may be 0755: tighten
    # ours (never a folder someone else owns).
    info = os.fstat(fd)
    if (created or info.st_uid == os.geteuid()) and stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.fchmod(fd, DIR_MODE)
    return fd


@contextmanager
def _folder(root: Path, parts: list[str]) -> Iterator[int]:
    """A descriptor of ``root/parts...``, every component opened without following symlinks.

    ``root`` (the incident folder) is created with its parents; only ``root`` and what is
    below it must not be symlinks (``output_dir`` itself may be one, the operator's choice).
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_dir(str(root), dir_fd=None, shown=root)
    shown = root
    try:
        for part in parts:
            shown = shown / part
            child = _open_dir(part, dir_fd=fd, shown=shown)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def evidence_dir(root: Path, rel: str | PurePosixPath = "") -> Path:
    """Create ``root/rel`` (0750, no symlinks followed) and return it."""
    parts = _parts(rel) if str(rel) else []
    with _folder(root, parts):
        pass
    return root.joinpath(*parts)


def write_bytes(root: Path, rel: str | PurePosixPath, data: bytes) -> Path:
    """Write ``data`` to ``root/rel`` atomically (temp file + rename), mode 0640.

    A symlink at the target is replaced by the new file, never written through; a symlinked
    folder on the way is refused. Raises ``OSError`` (disk full, permissions, symlinked folder);
    the old file is then left as it was and no temporary file remains.
    """
    *folders, name = _parts(rel)
    with _folder(root, folders) as dir_fd:
        temp = f".{name}.{os.getpid()}.tmp"
        fd = _open_file(temp, os.O_EXCL, dir_fd)
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
    return root.joinpath(*folders, name)


def write_text(root: Path, rel: str | PurePosixPath, text: str) -> Path:
    """``write_bytes`` of ``text`` encoded as UTF-8."""
    return write_bytes(root, rel, text.encode("utf-8"))


def _open_file(name: str, flag: int, dir_fd: int) -> int:
    # Write-only, created 0640 if missing, never through a symlink, not inherited by children.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | flag
    return os.open(name, flags, FILE_MODE, dir_fd=dir_fd)


def append_text(root: Path, rel: str | PurePosixPath, text: str) -> Path:
    """Append ``text`` (UTF-8) to ``root/rel``, creating it 0640; never through a symlink.

    For the timeline, which grows one line per event. A symlink at the target or on the way is
    refused with ``OSError`` (``ELOOP``) naming it. Raises ``OSError`` on write failures.
    """
    *folders, name = _parts(rel)
    with _folder(root, folders) as dir_fd:
        target = root.joinpath(*folders, name)
        try:
            fd = _open_file(name, os.O_APPEND, dir_fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise _refused(target) from err
            raise
        try:
            if os.fstat(fd).st_nlink > 1:
                raise OSError(errno.EMLINK, "refusing to append to a hard-linked file", str(target))
            os.fchmod(fd, FILE_MODE)
            view = memoryview(text.encode("utf-8"))
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
    return target


def remove_file(root: Path, rel: str | PurePosixPath) -> bool:
    """Remove ``root/rel`` if present (a symlink is removed, not its target); True if removed."""
    *folders, name = _parts(rel)
    with _folder(root, folders) as dir_fd:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
    return True


def symlinks_in(root: Path) -> list[str]:
    """Paths (relative, sorted) of every symlink under ``root``, the folder itself included."""
    if root.is_symlink():
        return ["."]
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def reserve_room(root: Path, nbytes: int) -> bool:
    """Hold ``nbytes`` in ``root`` (a file of that size, ``RESERVE_NAME``); False when the
    file system has not that much room (nothing is then held)."""
    with _folder(root, []) as dir_fd:
        try:
            fd = _open_file(RESERVE_NAME, os.O_TRUNC, dir_fd)
        except OSError:
            return False
        try:
            os.fchmod(fd, FILE_MODE)
            try:
                os.posix_fallocate(fd, 0, nbytes)
            except OSError as err:
                if err.errno != errno.EOPNOTSUPP:
                    raise
                os.write(fd, b"\0" * nbytes)  # a file system without fallocate
        except OSError:
            os.close(fd)
            with suppress(OSError):
                os.unlink(RESERVE_NAME, dir_fd=dir_fd)
            return False
        os.close(fd)
    return True


def release_room(root: Path) -> bool:
    """Give back the room ``reserve_room`` held; True when there was some."""
    try:
        return remove_file(root, RESERVE_NAME)
    except OSError:
        return False
