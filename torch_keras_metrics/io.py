"""Atomic checkpoint files: a reader sees the previous file or the new one, never half of either.

`atomic_save(obj, path)` writes `torch.save(obj)` to a temporary file in the target's folder, flushes
and fsyncs it, renames it over `path` with `os.replace` (atomic on POSIX and Windows), then fsyncs
the folder so the rename itself survives a power cut. If anything fails on the way, the temporary
file is removed and `path` is left as it was.

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
import secrets
from typing import Any

import torch

__all__ = ["atomic_save", "fsync_dir"]


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


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)`, atomically: temporary file in the same folder, fsync, `os.replace`, fsync the folder."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # os.open with 0o666 lets the umask decide the mode, as a plain `open` would (mkstemp forces 0o600)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
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
