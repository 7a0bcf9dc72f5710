"""One run at a time in a folder: the lock file ``vae-prac.lock``.

Two runs writing to one folder would delete each other's checkpoints. ``train`` (and so
``vae-prac train``) holds ``FOLDER/vae-prac.lock`` while it runs; a second run on that
folder stops at once with a ``RunLockedError`` naming the first. The file records the
process (id, host, start time, command); the lock itself is the operating system's, so
it ends with its process however that process ends, ``kill -9`` included. The file
such a process leaves behind is taken over by the next run, which says so.

``hold(folder)`` takes the lock for a block; ``FolderLock`` for a whole command, which
may have to create the folder first (the command line's ``train``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

LOCK_NAME = "vae-prac.lock"
# Windows locks byte ranges and refuses to read locked bytes: lock one far past the text.
_WINDOWS_LOCK_OFFSET = 1 << 20

# This process's locks: path -> [open file, depth]. A run may take the lock of a folder
# it already holds (the command line holds it around `train`, which takes it too).
_held: dict = {}


class RunLockedError(RuntimeError):
    """Another process is running in this folder; ``holder`` is what its lock file says."""

    def __init__(self, folder: str, holder: dict):
        super().__init__(
            f"{folder} is in use by another run: {describe(holder)}. Wait for it to end "
            f"(or stop it), or write to another folder."
        )
        self.folder = folder
        self.holder = holder


def describe(holder: dict) -> str:
    """'process 123 on host, started 2026-12-07 10:00:00 (vae-prac train ...)'."""
    if not holder.get("pid"):
        return "a process that has just started (its lock file is still empty)"
    where = "" if holder.get("host") in (None, socket.gethostname()) else f" on {holder['host']}"
    command = holder.get("command") or ""
    if len(command) > 100:
        command = command[:97] + "..."
    return f"process {holder['pid']}{where}, started {holder.get('started', '?')}" + (
        f" ({command})" if command else ""
    )


def _command() -> str:
    """This process's command line, short: 'vae-prac train --out runs/a', 'python -m ...'."""
    argv = sys.argv if sys.argv and sys.argv[0] else ["python"]
    program = os.path.basename(argv[0])
    if program == "__main__.py":  # python -m PACKAGE
        program = "python -m " + os.path.basename(os.path.dirname(argv[0]))
    return " ".join([program] + argv[1:])


def _try_lock(f) -> bool:
    try:
        if sys.platform == "win32":
            f.seek(_WINDOWS_LOCK_OFFSET)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read(path) -> dict:
    """What a lock file says; {} for an empty or unreadable one."""
    try:
        with open(path) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


def acquire(folder, say=print) -> str:
    """Take the lock of ``folder`` (created if missing) for this process; returns its path.

    Raises ``RunLockedError`` if another process holds it. A lock file left by a process
    that ended without releasing it is taken over, with one line passed to ``say``.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.realpath(os.path.join(folder, LOCK_NAME))
    if path in _held:
        _held[path][1] += 1
        return path
    while True:
        f = open(path, "a+")  # created if missing, never truncated
        if not _try_lock(f):
            f.close()
            holder = _read(path)
            for _ in range(20):  # the holder may be writing its details right now
                if holder:
                    break
                time.sleep(0.05)
                holder = _read(path)
            raise RunLockedError(str(folder), holder)
        # The holder before us may have removed the file between our open and our lock:
        # then this lock is on a file no one else opens. Open the path again.
        try:
            current = os.path.samestat(os.fstat(f.fileno()), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        f.close()
    f.seek(0)
    left = f.read()
    if left.strip():
        try:
            previous = json.loads(left)
        except ValueError:
            previous = {}
        say(
            f"Taking over {path}: it was left by {describe(previous)}, which ended "
            f"without releasing it."
        )
    f.seek(0)
    f.truncate()
    f.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": _command(),
            }
        )
    )
    f.flush()
    _held[path] = [f, 1]
    return path


def release(path: str):
    """Release a lock taken with ``acquire`` (the outermost release removes the file)."""
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1]:
        return
    del _held[path]
    f = entry[0]
    # Removed while still locked, so no other run can hold this file meanwhile.
    try:
        os.remove(path)
    except OSError:
        with contextlib.suppress(OSError):
            f.truncate(0)  # (Windows, or a read-only folder): at least no stale details
    f.close()  # and so the operating system's lock ends


@contextlib.contextmanager
def hold(folder, say=print):
    """``with hold(folder):`` the lock of ``folder`` for the block, released however it ends."""
    path = acquire(folder, say)
    try:
        yield path
    finally:
        release(path)


class FolderLock:
    """The lock of ``folder`` for a whole command, released however the command ends.

    ``with FolderLock(folder) as lock:`` takes it at once if the folder exists; else the
    command calls ``lock.take()`` once it has created the folder, so that a command
    refused before that leaves no folder behind.
    """

    def __init__(self, folder, say=print):
        self.folder, self.say, self.path = folder, say, None

    def take(self):
        if self.path is None:
            self.path = acquire(self.folder, self.say)

    def __enter__(self):
        if os.path.isdir(self.folder):
            self.take()
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            release(self.path)
            self.path = None
