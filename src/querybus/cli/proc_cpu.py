"""CPU time of processes, read from ``/proc`` (Linux), for ``querybus bench``.

A reading is a snapshot of the CPU ticks (user + system) of a set of
processes; the difference of two readings is the CPU those processes spent in
between. Processes are keyed by pid *and* start time, so a pid reused between
two readings is never mistaken for the process it replaced.

With ``descendants=True`` a set is its roots and every process below them
(PostgreSQL: the postmaster and its backends), and each process also counts
the CPU of the children it has reaped (``cutime``/``cstime``), so the set's
total only grows: a backend that exits between two readings moves its CPU
into its parent's reaped figure (the postmaster waits for its children at
once), and a process that starts between two readings counts all its CPU
(it spent it since the first). What is lost: a process that leaves the set
without being reaped inside it (re-parented to init when its parent dies).

Finding a service's process: :func:`listening_pids` looks the listening
socket of a TCP port up in ``/proc/net/tcp`` and ``tcp6`` (its inode) and then
the processes holding that socket (``/proc/<pid>/fd`` links). Reading another
user's ``fd`` needs that user or root; without it nothing is found and the
caller falls back to what else it knows (a pid file).

Off Linux (no ``/proc``) every reading is ``None``: callers show "—".
No third-party dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CpuReading",
    "ProcessSet",
    "command_name",
    "cpu_seconds",
    "listening_pids",
    "parent_pid",
    "pid_from_file",
    "read_cpu",
    "roots_of",
    "supported",
]

_PROC = Path("/proc")
#: Socket state LISTEN in /proc/net/tcp (include/net/tcp_states.h).
_TCP_LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU ticks of a set of processes at one moment."""

    #: (pid, start time in ticks since boot) → CPU ticks (user + system, and
    #: in a tree, of the reaped children too)
    ticks: dict[tuple[int, int], int]
    #: Read with ``descendants``: a process missing from a later reading was
    #: reaped inside the set and its CPU is in its parent's figure.
    tree: bool


@dataclass(frozen=True, slots=True)
class ProcessSet:
    """Processes whose CPU is summed: ``roots``, and with ``descendants``
    every process below them and every child they have reaped."""

    roots: tuple[int, ...]
    descendants: bool = False


@dataclass(frozen=True, slots=True)
class _Stat:
    pid: int
    ppid: int
    start: int
    #: utime + stime
    own: int
    #: cutime + cstime: the reaped children's
    reaped: int


def supported() -> bool:
    """True where processes can be read from ``/proc`` (Linux)."""
    return (_PROC / "self" / "stat").is_file()


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


def _read_stat(pid: int) -> _Stat | None:
    """One process's ``/proc/<pid>/stat``, or None when it is gone or unreadable."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')':
    # the fields after it start behind the last ')'.
    rest = text[text.rfind(")") + 2 :].split()
    try:
        # rest[0] is field 3 (state): field n is rest[n - 3] (proc(5)).
        return _Stat(
            pid=pid,
            ppid=int(rest[1]),
            start=int(rest[19]),
            own=int(rest[11]) + int(rest[12]),
            reaped=int(rest[13]) + int(rest[14]),
        )
    except (IndexError, ValueError):
        return None


def _all_pids() -> Iterator[int]:
    try:
        names = os.listdir(_PROC)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def _all_stats() -> dict[int, _Stat]:
    stats: dict[int, _Stat] = {}
    for pid in _all_pids():
        stat = _read_stat(pid)
        if stat is not None:
            stats[pid] = stat
    return stats


def _tree(roots: Iterable[int], stats: dict[int, _Stat]) -> list[_Stat]:
    """The roots and every process below them, from one scan of ``/proc``."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[_Stat] = []
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(stats[pid])
        todo.extend(children.get(pid, ()))
    return found


def read_cpu(processes: ProcessSet) -> CpuReading | None:
    """A reading of ``processes``' CPU ticks, or None when none of its roots
    can be read (gone, or no ``/proc``)."""
    ticks: dict[tuple[int, int], int] = {}
    if processes.descendants:
        for stat in _tree(processes.roots, _all_stats()):
            ticks[(stat.pid, stat.start)] = stat.own + stat.reaped
    else:
        for pid in processes.roots:
            root = _read_stat(pid)
            if root is not None:
                ticks[(root.pid, root.start)] = root.own
    return CpuReading(ticks, processes.descendants) if ticks else None


def cpu_seconds(before: CpuReading | None, after: CpuReading | None) -> float | None:
    """CPU seconds spent between two readings of the same set, or None when
    either is missing.

    A process only in ``after`` started in between: all its CPU counts. In a
    tree, a process only in ``before`` was reaped by its parent, whose reaped
    figure now holds all of its CPU: the difference of the two sums is what
    the set spent. Without descendants a root that is gone counts nothing.
    """
    if before is None or after is None:
        return None
    if before.tree:
        ticks = sum(after.ticks.values()) - sum(before.ticks.values())
    else:
        ticks = sum(value - before.ticks.get(key, 0) for key, value in after.ticks.items())
    # Negative only when a process left the tree unreaped: count nothing then.
    return max(ticks, 0) / _ticks_per_second()


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or None when it cannot be read."""
    stat = _read_stat(pid)
    return None if stat is None else stat.ppid


def command_name(pid: int) -> str | None:
    """The command name of ``pid`` (``/proc/<pid>/comm``), or None when it
    cannot be read."""
    try:
        return (_PROC / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue  # no IPv6, or no /proc
        for line in lines:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def listening_pids(port: int) -> set[int]:
    """The processes holding a socket that listens on TCP ``port`` (any
    address), or an empty set when none is found or readable.

    Looks at every process's open files: only those this process may read
    (its own user's, or all as root).
    """
    inodes = _listening_inodes(port)
    if not inodes:
        return set()
    links = {f"socket:[{inode}]" for inode in inodes}
    pids: set[int] = set()
    for pid in _all_pids():
        fd_dir = _PROC / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            try:
                if os.readlink(fd_dir / fd) in links:
                    pids.add(pid)
                    break
            except OSError:
                continue  # closed meanwhile
    return pids


def roots_of(pids: set[int]) -> tuple[int, ...]:
    """Those of ``pids`` whose parent is not among them: a server that forks
    workers sharing its listening socket is found once, as its parent."""
    return tuple(sorted(pid for pid in pids if parent_pid(pid) not in pids))


def pid_from_file(path: Path, command_contains: str) -> int | None:
    """The pid written in ``path``, if that process runs and its command line
    contains ``command_contains`` (a stale pid file names another process),
    else None.
    """
    try:
        pid = int(path.read_text(encoding="ascii").strip())
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if command_contains.encode() in cmdline else None
