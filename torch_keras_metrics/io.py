"""Atomic checkpoint files: a reader sees the previous file or the new one, never half of either.

`atomic_save(obj, path)` writes `torch.save(obj)` to a temporary file in the target's folder, flushes
and fsyncs it, renames it over `path` with `os.replace` (atomic on POSIX and Windows), then fsyncs
the folder so the rename itself survives a power cut. If anything fails on the way, the temporary
file is removed and `path` is left as it was. A Ctrl-C (SIGINT) that arrives during the write, in the
main thread, is held until the file is in place and then delivered to the handler it was meant for.

A process killed while writing leaves its temporary file (`.<name>.<pid>.<8 hex digits>.tmp`) behind;
`remove_stale_temporaries(folder)` removes those whose writer is no longer running, and `atomic_save`
calls it on the folder it writes to.

>>> import os, tempfile, torch
>>> folder = tempfile.mkdtemp()
>>> atomic_save({"w": torch.ones(2)}, os.path.join(folder, "ckpt.pt"))
>>> torch.load(os.path.join(folder, "ckpt.pt"), weights_only=True)["w"]
tensor([1., 1.])
>>> os.listdir(folder)
['ckpt.pt']
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["atomic_save", "fsync_dir", "remove_stale_temporaries"]

# what `atomic_save` names its temporary files: `.<target name>.<writer pid>.<8 hex digits>.tmp`
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp$")


def fsync_dir(folder: str) -> None:
    """Flush a folder's entries (a rename, a new file) to disk; a no-op where folders cannot be opened."""
    if os.name == "nt":  # Windows cannot open a directory for fsync
        return
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or a pid this system cannot check): leave its file alone
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files `atomic_save` left in `folder` when its writer was killed; their paths.

    Only files named exactly as `atomic_save` names them, and whose writer process is no longer running
    on this machine, are removed. Nothing is removed on Windows (no safe way to ask whether a pid runs).

    >>> import tempfile
    >>> remove_stale_temporaries(tempfile.mkdtemp())
    []
    """
    folder = os.fspath(folder) or "."
    if os.name == "nt":
        return []
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or _running(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):  # another process may be removing it too
            os.remove(entry.path)
            removed.append(entry.path)
    return removed


@contextlib.contextmanager
def _holding_sigint() -> Iterator[None]:
    """Hold a SIGINT that arrives inside the block (main thread only), then deliver it as it would have been.

    torch.save interrupted half-way leaves its zip writer broken (it raises a RuntimeError, not the
    KeyboardInterrupt); held, the Ctrl-C takes effect once the file is complete.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # ignored, or a handler not installed from Python: leave it
        yield
        return
    held: list[Any] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for frame in held:  # each press as it came: a first one may ask to stop, a second to abort
            if callable(previous):
                previous(signal.SIGINT, frame)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)`, atomically: temporary file in the same folder, fsync, `os.replace`, fsync the folder.

    A Ctrl-C during the write is delivered after it (see the module docstring); stale temporary files of
    killed writers in the folder are removed first.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    # os.open with 0o666 lets the umask decide the mode, as a plain `open` would (mkstemp forces 0o600)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with _holding_sigint():
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        fsync_dir(folder)
