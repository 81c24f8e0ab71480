"""One training at a time in a run directory: the run-folder lock.

Two trainings started together on the same ``run_dir`` would both write ``config.json``,
``last.pt``, ``best.pt`` and the predictions, each replacing the other's files: the folder
would end up holding a mixture, and both commands would exit 0. A training therefore holds
an exclusive lock on ``<run_dir>/.lock`` (``fcntl.flock``, non-blocking) from the moment it
starts using the folder until it ends; a second process asking for the same folder is refused
at once with a :class:`RunDirectoryBusy` naming the holder's process id, which the holder
writes into the lock file.

The operating system releases a ``flock`` when its process dies (``kill -9`` included), so a
lock file a dead process left behind does not block: the next training takes the lock and
writes its own pid. A training that ends normally removes the lock file; one that fails
before writing anything also removes the ``run_dir`` it created for the lock, so a refused
configuration leaves no folder behind.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType

from finefcace.errors import UserError

try:  # POSIX; elsewhere (Windows) trainings are not locked
    import fcntl
except ImportError:  # pragma: no cover - no fcntl on this platform
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunDirectoryBusy", "RunDirectoryLock"]

#: The lock file inside a run directory (hidden: not one of the files a run is made of).
LOCK_FILE = ".lock"


class RunDirectoryBusy(UserError):
    """Another process is training in the same run directory."""


class RunDirectoryLock:
    """The exclusive lock of one run directory, held between ``acquire`` and ``release``
    (or as a context manager). Creates the folder if needed (and removes it again on
    ``release(remove_created=True)`` when nothing else was written there)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._handle: int | None = None
        self._created: list[Path] = []  # folders made for the lock, deepest first

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> "RunDirectoryLock":
        """Take the lock, or raise :class:`RunDirectoryBusy` naming the process that holds it."""
        if fcntl is None or self.held:  # pragma: no cover - no locking on this platform
            return self
        self._make_folder()
        while True:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _read_pid(handle)
                os.close(handle)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                self._remove_created()
                who = f"process {holder}" if holder else "another process"
                raise RunDirectoryBusy(
                    f"run directory {str(self.run_dir)!r} is in use: {who} is training there (lock file "
                    f"{self.path}); wait for it to finish, or choose another 'run_dir'. Two trainings in one "
                    "folder would overwrite each other's checkpoints") from None
            if _same_file(handle, self.path):  # not a file a releasing holder just unlinked
                break
            os.close(handle)
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        os.fsync(handle)
        self._handle = handle
        return self

    def release(self, *, remove_created: bool = False) -> None:
        """Remove the lock file and let the lock go; with ``remove_created``, also the folders
        made for it when they hold nothing else (a training refused before it wrote anything)."""
        if self._handle is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # still locked: a process that opened it retries
        finally:
            os.close(self._handle)
            self._handle = None
        if remove_created:
            self._remove_created()

    def __enter__(self) -> "RunDirectoryLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release(remove_created=kind is not None)

    def _make_folder(self) -> None:
        missing = [p for p in (self.run_dir, *self.run_dir.absolute().parents) if not p.exists()]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._created = [p for p in missing if p.is_dir()]

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): it holds something worth keeping
                break
        self._created = []


def _read_pid(handle: int) -> int | None:
    try:
        text = os.pread(handle, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _same_file(handle: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)
