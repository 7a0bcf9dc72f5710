"""Run an untrusted program so that it can hurt nothing but its own work folder.

The grader runs each submission's notebook, and then each check, as a separate program
through :func:`run`. With ``sandbox=True`` (the default) the program runs under
bubblewrap (``bwrap``, Debian's and Ubuntu's package ``bubblewrap``; Flatpak's sandbox),
which gives it, with Linux namespaces and no privileges:

* the machine's file system **read-only** (``--ro-bind / /``), so that it can neither
  change the installed ``vae_prac`` (its checks) nor anything else, with exactly one
  writable folder, ``workdir``, holding only its own copy of the submission; a private,
  empty ``/tmp`` (``HOME``, ``IPYTHONDIR`` and ``MPLCONFIGDIR`` live there, so an IPython
  start-up file written by one submission is gone before the next) and ``/run``;
* the solution notebooks, the repository's ``notebooks/`` folder and every path in
  ``hide`` (the other submissions, the grades' CSV) replaced by empty folders;
* **no network** (its own network namespace holds only a loopback device, which the
  kernel and the runner use to talk to each other);
* its **own process namespace** and ``/proc``: it sees no process of the grader (whose
  command line names every classmate's notebook) and cannot signal one. Its parent is
  bwrap's init process, which ignores even ``SIGKILL`` sent from inside;
* **no capabilities** (``--cap-drop ALL``, and no new user namespaces where bwrap
  supports ``--disable-userns``): a sandbox started by root could otherwise unmount the
  empty folders laid over the solutions;
* an environment cleared of everything but ``PATH``, ``HOME``, ``LANG``,
  ``PYTHONDONTWRITEBYTECODE``, ``VAE_PRAC_DATA_DIR`` (where the MNIST files are) and
  what the caller passes in ``env``;
* ``--die-with-parent`` (the sandbox dies with the grader) and ``--new-session`` (no
  access to the grader's terminal).

The **whole process tree** ends when :func:`run` returns: when the program exits, or
when it is killed at the timeout, bwrap's init process (the namespace's PID 1) dies and
the kernel kills everything left in the namespace, detached and double-forked children
included. Memory is limited for the whole tree where a control group can be made
(cgroup v2's ``memory.max`` or v1's ``memory.limit_in_bytes``, in a child of the
grader's own group: that needs root, or a delegated group), so three children of
1.2 GB each under a 3 GiB limit cannot all live; elsewhere each process gets
``RLIMIT_AS`` (address space) instead, which a program can defeat by starting several
processes. :attr:`Finished.memory_limit` says which applied. What the program prints is
read as it comes and kept up to ``output_limit`` bytes per stream.

What the sandbox does not do: hide what else the machine holds that its account may
read (grade on a machine or account without secrets; add paths to ``hide``), limit the
disk space written into ``workdir``, or limit the CPU time beyond the timeout.

With ``sandbox=False`` (``vae-prac grade --no-sandbox``, for machines without bwrap:
macOS, Windows, a container without user namespaces) the program is an ordinary
process in its own session, with a private ``HOME`` and ``IPYTHONDIR``, ``RLIMIT_AS``
(or the control group), and its process group killed at the end. It can then read and
write whatever the grader can: use it only for submissions you trust.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vae_prac.course import ROOT, SOLUTIONS_DIR

#: Where HOME is inside the sandbox (its private /tmp).
SANDBOX_HOME = "/tmp/home"
#: Folders of the real HOME that hold credentials: hidden too, where they exist.
SECRET_HOME_ENTRIES = (".ssh", ".gnupg", ".aws", ".kube", ".docker", ".netrc", ".config/gcloud")
CGROUP = "whole process tree (cgroup)"
RLIMIT = "per process (rlimit)"
NO_LIMIT = "none"
_PROBE_TIMEOUT = 30


class SandboxUnavailable(RuntimeError):
    """bwrap cannot run here; the message says why and what to install."""


@dataclass
class Finished:
    """How a program run by :func:`run` ended."""

    returncode: int | None  # None when it was killed at the timeout
    stdout: bytes  # at most output_limit bytes, then a note of what was dropped
    stderr: bytes
    timed_out: bool
    seconds: float
    memory_limit: str  # CGROUP, RLIMIT or NO_LIMIT: how the memory limit was applied
    oom_kills: int = 0  # processes the control group's limit killed (0 without one)


# --------------------------------------------------------------------------
# Is bwrap usable here?


@functools.lru_cache(maxsize=1)
def _bwrap_options() -> tuple[str, ...]:
    """The isolation options of every sandbox, as far as this bwrap supports them."""
    options = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    bwrap = shutil.which("bwrap")
    try:
        usage = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT
        ).stdout
    except (OSError, subprocess.SubprocessError, TypeError):
        usage = ""
    if "--disable-userns" in usage:  # bubblewrap 0.8.0 or later
        options += ["--unshare-user", "--disable-userns"]
    return tuple(options)


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why the sandbox cannot run on this machine (and what to do), or None if it can.

    Tries ``bwrap`` once with the options of every sandbox; the answer is cached.
    """
    if not sys.platform.startswith("linux"):
        return (
            f"the grader's sandbox needs Linux (bubblewrap); this is {sys.platform}, which "
            "is not supported. Grade on a Linux machine, or pass --no-sandbox knowingly: "
            "the submissions' code then runs with your rights."
        )
    if shutil.which("bwrap") is None:
        return (
            "the grader's sandbox needs bubblewrap (bwrap), which is not installed. On "
            "Debian or Ubuntu: sudo apt-get install bubblewrap (Fedora: sudo dnf install "
            "bubblewrap); or pass --no-sandbox knowingly: the submissions' code then runs "
            "with your rights."
        )
    argv = ["bwrap", *_bwrap_options(), "--ro-bind", "/", "/", "--dev", "/dev"]
    argv += ["--proc", "/proc", "--tmpfs", "/tmp", "true"]
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as err:
        return f"bwrap could not be started: {type(err).__name__}: {err}"
    if probe.returncode == 0:
        return None
    why = probe.stderr.strip() or f"exit status {probe.returncode}"
    return (
        f"bubblewrap is installed but cannot make a sandbox here ({why}). Usually this "
        "means unprivileged user namespaces are disabled: enable them with sudo sysctl "
        "kernel.unprivileged_userns_clone=1 (Debian), or on Ubuntu 24.04 and later "
        "allow bwrap in AppArmor (sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0); "
        "a Docker container needs --security-opt seccomp=unconfined (or --privileged). "
        "Or pass --no-sandbox knowingly: the submissions' code then runs with your rights."
    )


# --------------------------------------------------------------------------
# Memory for the whole tree: a control group.


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, file system type, super options) of each mount of this process."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4:
            continue
        fstype, options = fields[dash + 1], set(fields[dash + 3].split(","))
        found.append((fields[3], fields[4].replace("\\040", " "), fstype, options))
    return found


def _inside(mount_root: str, mount_point: str, path: str) -> Path | None:
    """Where ``path`` (a group, as /proc/self/cgroup names it) is under a mount."""
    rel = os.path.relpath(path, mount_root)
    return None if rel.startswith("..") else Path(mount_point) / rel


class _Cgroup:
    """A fresh control group below the grader's own, limiting the memory of its members.

    ``make`` returns None when none can be made (no permission, no memory controller);
    the caller then falls back to RLIMIT_AS.
    """

    def __init__(self, path: Path, version: int):
        self.path, self.version = path, version

    @classmethod
    def make(cls, limit_bytes: int) -> _Cgroup | None:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        groups = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else ["(v2)"]:
                groups[name] = path
        mounts = _mounts()
        name = f"vae_prac_sandbox_{os.getpid()}_{secrets.token_hex(4)}"
        for root, point, fstype, options in mounts:  # cgroup v2 (unified) first
            if fstype == "cgroup2" and "(v2)" in groups:
                parent = _inside(root, point, groups["(v2)"])
                if parent is not None and (group := cls._make_v2(parent, name, limit_bytes)):
                    return group
        for root, point, fstype, options in mounts:
            if fstype == "cgroup" and "memory" in options and "memory" in groups:
                parent = _inside(root, point, groups["memory"])
                if parent is not None and (group := cls._make_v1(parent, name, limit_bytes)):
                    return group
        return None

    @classmethod
    def _make_v2(cls, parent: Path, name: str, limit_bytes: int) -> _Cgroup | None:
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if "memory" not in enabled:
                # Works only where the parent holds no process itself (a delegated group).
                (parent / "cgroup.subtree_control").write_text("+memory")
            path = parent / name
            path.mkdir()
        except OSError:
            return None
        group = cls(path, 2)
        try:
            (path / "memory.max").write_text(str(limit_bytes))
        except OSError:
            group.remove()
            return None
        for setting, value in (("memory.swap.max", "0"), ("pids.max", "4096")):
            try:  # no swapping past the limit; no fork bomb (where the controllers exist)
                (path / setting).write_text(value)
            except OSError:
                pass
        return group

    @classmethod
    def _make_v1(cls, parent: Path, name: str, limit_bytes: int) -> _Cgroup | None:
        path = parent / name
        try:
            path.mkdir()
        except OSError:
            return None
        group = cls(path, 1)
        try:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            group.remove()
            return None
        try:  # memory and swap together (where swap is accounted)
            (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        except OSError:
            pass
        return group

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def members(self) -> list[int]:
        try:
            return [int(pid) for pid in self.procs.read_text().split()]
        except (OSError, ValueError):
            return []

    def oom_kills(self) -> int:
        """How many processes the limit killed."""
        try:
            name = "memory.events" if self.version == 2 else "memory.oom_control"
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill_all(self, wait: float = 10.0) -> None:
        """SIGKILL every member (again and again: one may be forking) until none is left."""
        deadline = time.monotonic() + wait
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            try:
                (self.path / "cgroup.kill").write_text("1")
            except OSError:
                pass
        while (members := self.members()) and time.monotonic() < deadline:
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        for _ in range(100):  # the kernel frees the group a moment after its last member
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


# A tiny program that puts itself in the control group, limits its address space, then
# becomes the real command (so that bwrap, and all it starts, inherit both).
_LAUNCHER = """\
import os, resource, sys
procs, limit = sys.argv[1], int(sys.argv[2])
if procs:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.execvp(sys.argv[3], sys.argv[3:])
"""


# --------------------------------------------------------------------------
# The sandbox's command line.


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def _needed() -> list[Path]:
    """What the sandboxed program needs to read: this Python, vae_prac, the MNIST files."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, Path(sys.executable).resolve().parent]
    paths += [ROOT, os.environ.get("VAE_PRAC_DATA_DIR", "")]
    return [Path(p).resolve() for p in paths if p and Path(p).exists()]


def _bwrap_argv(
    argv: list[str], workdir: Path, hide: Sequence[Path], env: dict[str, str]
) -> list[str]:
    """bwrap's command line.

    On the read-only root go, outermost first (so that a mount inside another comes
    after it): empty folders over /tmp, /run and each hidden path; the workdir, writable;
    and, read-only again, what the program needs that an empty folder covered (this
    Python or the repository may live under /tmp). A hidden path already covered by
    an empty folder needs none of its own.
    """
    home = Path(os.path.expanduser("~")).resolve()
    hidden = [Path(SOLUTIONS_DIR), ROOT / "notebooks", *map(Path, hide)]
    hidden += [home / entry for entry in SECRET_HOME_ENTRIES]
    hidden = [p.resolve() for p in hidden if p.exists()]
    scratch = [Path(p) for p in ("/tmp", "/run") if Path(p).is_dir()]
    entries = {p: "empty" for p in scratch + hidden}
    entries.update({p: "read-only" for p in _needed() if any(_contains(e, p) for e in entries)})
    entries[workdir] = "writable"

    def needs_own(path: Path) -> bool:
        """Whether a hidden path would be visible without an empty folder of its own."""
        around = [e for e in entries if e != path and _contains(e, path)]
        return not around or entries[max(around, key=lambda e: len(e.parts))] != "empty"

    ordered = sorted(
        (p for p in entries if entries[p] != "empty" or needs_own(p)), key=lambda p: len(p.parts)
    )
    mounts = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in ordered:
        if entries[path] == "writable":
            mounts += ["--bind", str(path), str(path)]
        elif entries[path] == "read-only":
            mounts += ["--ro-bind", str(path), str(path)]
        elif path.is_dir():
            mounts += ["--tmpfs", str(path)]
        else:
            mounts += ["--ro-bind", "/dev/null", str(path)]
    for path in ordered:  # the empty folders laid over hidden ones: read-only too
        if entries[path] == "empty" and path not in scratch and path.is_dir():
            mounts += ["--remount-ro", str(path)]  # (not recursive: a workdir inside stays)
    mounts += ["--dir", SANDBOX_HOME, "--chdir", str(workdir), "--clearenv"]
    for key, value in env.items():
        mounts += ["--setenv", key, value]
    return ["bwrap", *_bwrap_options(), *mounts, "--", *argv]


def _environment(home: str, env: dict[str, str] | None) -> dict[str, str]:
    """The sandboxed program's whole environment."""
    python_bin = str(Path(sys.executable).parent)
    result = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.config/matplotlib",
        "TMPDIR": "/tmp",
    }
    if "VAE_PRAC_DATA_DIR" in os.environ:
        result["VAE_PRAC_DATA_DIR"] = os.environ["VAE_PRAC_DATA_DIR"]
    result.update(env or {})
    return result


# --------------------------------------------------------------------------
# Running.


class _Reader(threading.Thread):
    """Reads a pipe to its end, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, pipe, limit: int):
        super().__init__(daemon=True)
        self.pipe, self.limit, self.chunks, self.kept, self.dropped = pipe, limit, [], 0, 0

    def run(self):
        try:
            while chunk := self.pipe.read1(1 << 16):
                keep = chunk[: max(self.limit - self.kept, 0)]
                if keep:
                    self.chunks.append(keep)
                    self.kept += len(keep)
                self.dropped += len(chunk) - len(keep)
        except (OSError, ValueError):  # closed under us after a give-up
            pass

    def text(self) -> bytes:
        data = b"".join(self.chunks)
        if self.dropped:
            data += (
                f"\n[sandbox: {self.dropped:,} more bytes were dropped: "
                f"the output limit is {self.limit:,} bytes]\n"
            ).encode()
        return data


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
    except OSError:  # the program exited without reading it all
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _end_tree(process: subprocess.Popen, sandboxed: bool, group: _Cgroup | None) -> None:
    """Kill the program and everything it started; returns when they are gone."""
    if group is not None:
        group.kill_all()
    if sandboxed:
        if process.poll() is not None:
            return  # bwrap exits after its namespace's last process: nothing is left
        # bwrap's child is the namespace's PID 1: when it dies, the kernel kills all the
        # namespace holds, and bwrap exits once that is done.
        for child in _children(process.pid):
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    # Its own session, so the group's id is its pid (kept while the group has members,
    # even after the leader exited).
    _signal_group(process.pid)
    process.wait()


def run(
    argv: list[str],
    workdir: Path,
    *,
    timeout: float,
    memory_limit_gib: float | None,
    sandbox: bool = True,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    hide: Sequence[Path] = (),
    output_limit: int = 1 << 20,
) -> Finished:
    """Run ``argv`` in ``workdir``; return when it, and every process it started, is gone.

    ``timeout`` (seconds) bounds the whole run, start-up included: at the timeout
    everything is killed and ``returncode`` is None. ``memory_limit_gib`` limits the
    memory (None: no limit). ``env`` is added to the sandbox's small environment (with
    ``sandbox=False``, to this process's). ``stdin`` is written to the program's
    standard input. ``hide`` lists further paths made invisible. At most
    ``output_limit`` bytes of stdout and of stderr are kept. Raises SandboxUnavailable
    when ``sandbox`` is on and bwrap cannot run here.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if memory_limit_gib is not None and not memory_limit_gib > 0:
        raise ValueError(
            f"memory_limit_gib must be positive (or None for no limit), got {memory_limit_gib!r}."
        )
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise ValueError(f"workdir {workdir} is not a folder: make it first.")
    for precious in (ROOT, Path(sys.prefix).resolve(), Path(SOLUTIONS_DIR).resolve()):
        if _contains(workdir, precious):
            raise ValueError(
                f"workdir {workdir} holds {precious}, which the program must not be able to "
                "change: give it a fresh folder of its own."
            )
    if sandbox and (reason := unavailable_reason()) is not None:
        raise SandboxUnavailable(reason)

    group, rlimit = None, 0
    if memory_limit_gib is not None:
        limit_bytes = int(memory_limit_gib * 2**30)
        group = _Cgroup.make(limit_bytes) if sys.platform.startswith("linux") else None
        rlimit = 0 if group is not None else limit_bytes
    memory_limit = CGROUP if group else RLIMIT if rlimit else NO_LIMIT

    private_home = None
    if sandbox:
        command = _bwrap_argv(argv, workdir, hide, _environment(SANDBOX_HOME, env))
        environ = None
    else:
        private_home = tempfile.mkdtemp(prefix="vae_prac_home_")
        environ = {**os.environ, **_environment(private_home, env)}
        environ["PATH"] = os.environ.get("PATH", environ["PATH"])
        command = list(argv)
    if group is not None or rlimit:
        procs = str(group.procs) if group else ""
        command = [sys.executable, "-c", _LAUNCHER, procs, str(rlimit), *command]

    started = time.monotonic()
    timed_out = False
    try:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environ,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        readers = [_Reader(process.stdout, output_limit), _Reader(process.stderr, output_limit)]
        for reader in readers:
            reader.start()
        if stdin is not None:
            threading.Thread(target=_feed, args=(process.stdin, stdin), daemon=True).start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        _end_tree(process, sandbox, group)
        for reader in readers:
            # The pipes close when the last process holding them is gone; a detached
            # process outside any namespace or group (no sandbox) may keep them open.
            reader.join(timeout=5)
        for reader in readers:
            if not reader.is_alive():  # (closing a pipe a thread still reads would block)
                reader.pipe.close()
        oom_kills = group.oom_kills() if group else 0
    finally:
        if group is not None:
            group.kill_all()
            group.remove()
        if private_home is not None:
            shutil.rmtree(private_home, ignore_errors=True)
    return Finished(
        returncode=None if timed_out else process.returncode,
        stdout=readers[0].text(),
        stderr=readers[1].text(),
        timed_out=timed_out,
        seconds=time.monotonic() - started,
        memory_limit=memory_limit,
        oom_kills=oom_kills,
    )
