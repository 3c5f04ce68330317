"""Reading processes' CPU time from /proc (``querybus.cli.proc_cpu``), on this
test's own process and children it starts: real /proc, no fakes.

Thresholds are CPU seconds the processes are made to spend (a busy loop runs
until its own ``time.process_time()`` says so), with wide margins for /proc's
10 ms ticks: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from querybus.cli import proc_cpu

pytestmark = pytest.mark.skipif(not proc_cpu.supported(), reason="needs Linux /proc")

#: Spends CPU until its own process time reaches argv[1] seconds, says so, then
#: waits for stdin to close.
_BUSY = (
    "import sys, time\n"
    "while time.process_time() < float(sys.argv[1]):\n"
    "    pass\n"
    "print('spent', flush=True)\n"
    "sys.stdin.read()\n"
)

#: On each line of stdin: starts a child that spends 0.3 s of CPU and waits
#: for it (reaping it), then says "done". Spends almost nothing itself.
_PARENT = (
    "import subprocess, sys\n"
    "for _ in sys.stdin:\n"
    "    subprocess.run([sys.executable, '-c', sys.argv[1], '0.3'], input='', text=True,\n"
    "                   stdout=subprocess.DEVNULL, check=True)\n"
    "    print('done', flush=True)\n"
)


def _spend(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


@pytest.fixture
def busy_child() -> Iterator[subprocess.Popen[str]]:
    """A child that spends 0.3 s of CPU, then idles until stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", _BUSY, "0.3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        child.kill()
        child.communicate()


def test_own_process_cpu_delta_is_what_it_spent() -> None:
    own = proc_cpu.ProcessSet((os.getpid(),))
    before = proc_cpu.read_cpu(own)
    _spend(0.2)
    seconds = proc_cpu.cpu_seconds(before, proc_cpu.read_cpu(own))
    assert seconds is not None
    # 0.2 s spent; ticks are 10 ms and other threads may add a little.
    assert 0.15 <= seconds < 1.0


def test_a_busy_child_has_a_positive_cpu_delta(busy_child: subprocess.Popen[str]) -> None:
    child = proc_cpu.ProcessSet((busy_child.pid,))
    before = proc_cpu.read_cpu(child)
    assert busy_child.stdout is not None
    assert busy_child.stdout.readline() == "spent\n"
    seconds = proc_cpu.cpu_seconds(before, proc_cpu.read_cpu(child))
    assert seconds is not None
    assert seconds > 0


def test_a_tree_counts_a_child_that_ran_and_was_reaped_in_between() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT, _BUSY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:  # closing stdin (on leaving) ends it
        assert parent.stdin is not None
        assert parent.stdout is not None
        # Let the parent start up first: its own start is not what is measured.
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "done\n"
        tree = proc_cpu.ProcessSet((parent.pid,), descendants=True)
        alone = proc_cpu.ProcessSet((parent.pid,))
        before_tree, before_alone = proc_cpu.read_cpu(tree), proc_cpu.read_cpu(alone)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "done\n"
        in_tree = proc_cpu.cpu_seconds(before_tree, proc_cpu.read_cpu(tree))
        in_parent = proc_cpu.cpu_seconds(before_alone, proc_cpu.read_cpu(alone))
    assert in_tree is not None
    assert in_parent is not None
    # The child is gone: its 0.3 s are in the parent's reaped-children figure.
    assert in_tree >= 0.25
    assert in_parent < in_tree - 0.2


def test_a_tree_includes_a_running_child(busy_child: subprocess.Popen[str]) -> None:
    tree = proc_cpu.read_cpu(proc_cpu.ProcessSet((os.getpid(),), descendants=True))
    assert tree is not None
    assert busy_child.pid in {pid for pid, _ in tree.ticks}


def test_a_gone_process_reads_as_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names nothing (until reused, which start time tells)
    gone = proc_cpu.ProcessSet((child.pid,))
    assert proc_cpu.read_cpu(gone) is None
    own = proc_cpu.read_cpu(proc_cpu.ProcessSet((os.getpid(),)))
    assert proc_cpu.cpu_seconds(None, own) is None


def test_the_listener_of_a_port_is_found() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert os.getpid() in proc_cpu.listening_pids(port)
        assert proc_cpu.roots_of(proc_cpu.listening_pids(port)) == (os.getpid(),)


def test_a_bound_port_that_does_not_listen_has_no_listener() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        assert proc_cpu.listening_pids(bound.getsockname()[1]) == set()


def test_roots_of_keeps_the_parent_of_a_forked_server(busy_child: subprocess.Popen[str]) -> None:
    assert proc_cpu.parent_pid(busy_child.pid) == os.getpid()
    assert proc_cpu.roots_of({os.getpid(), busy_child.pid}) == (os.getpid(),)


def test_a_pid_file_names_a_process_only_if_its_command_matches(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    own_command = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert proc_cpu.pid_from_file(pid_file, own_command) == os.getpid()
    assert proc_cpu.pid_from_file(pid_file, "kafka.Kafka-not-this-one") is None
    pid_file.write_text("not a pid")
    assert proc_cpu.pid_from_file(pid_file, own_command) is None
    assert proc_cpu.pid_from_file(tmp_path / "missing.pid", own_command) is None


def test_command_name() -> None:
    assert proc_cpu.command_name(os.getpid()) == Path("/proc/self/comm").read_text().strip()
