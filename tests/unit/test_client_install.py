"""A caller's install: ``pip install querybus`` is the client without the server's libraries.

``import querybus`` (and the sync client, the DB-API module) must not load asyncpg,
pglast, aiosqlite or prometheus-client: an agent that only sends queries does not
install them (they come with ``querybus[adapter]``). Each check runs in a fresh
interpreter, since this test process has long since imported the adapter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What only the adapter side needs (top-level module names).
SERVER_LIBRARIES = frozenset({"asyncpg", "pglast", "aiosqlite", "prometheus_client"})
#: The rest of the ``adapter`` extra: the command line and the registry backends.
ADAPTER_EXTRA_ONLY = frozenset({"typer", "rich", "click", "httpx"})

CALLER_IMPORTS = [
    "import querybus",
    "import querybus.dbapi",
    "from querybus import QueryClient, SyncQueryClient",
]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (fail on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("statement", CALLER_IMPORTS)
def test_caller_imports_load_no_server_library(statement: str) -> None:
    code = textwrap.dedent(
        f"""
        {statement}
        import json, sys
        roots = {sorted(SERVER_LIBRARIES)!r}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in roots)))
        """
    )
    assert json.loads(run_python(code)) == []


# Imports of the adapter's libraries fail in the child, as on a caller's install.
_BLOCKER = """
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def test_the_client_works_without_the_adapter_extra() -> None:
    blocked = sorted(SERVER_LIBRARIES | ADAPTER_EXTRA_ONLY)
    code = (
        f"BLOCKED = {blocked!r}\n"
        + _BLOCKER
        + textwrap.dedent(
            """
        import asyncio

        import querybus
        import querybus.dbapi
        from querybus import QueryClient, RequestTimeoutError, SyncQueryClient, TopicNames
        from querybus.protocol import decode_request
        from querybus.transport import MemoryTransport, TopicSpec

        for name in querybus.__all__:
            getattr(querybus, name)
        assert callable(querybus.dbapi.connect)
        SyncQueryClient("127.0.0.1:1")  # built, not started

        async def main() -> None:
            # No adapter answers: the request is encoded and published, the reply
            # reader runs, and the caller gets its timeout.
            transport = MemoryTransport("client-only-install")
            topics = TopicNames()
            await transport.create_topics(
                [TopicSpec(topics.request, 1), TopicSpec(topics.response, 1)]
            )
            client = QueryClient(transport=transport, timeout=0.2)
            await client.start()
            try:
                try:
                    await client.fetchval("SELECT $1::int", 7)
                except RequestTimeoutError:
                    print("timed out")
            finally:
                await client.stop()
            reader = transport.partition_reader(topics.request, start_at="beginning")
            await reader.start()
            try:
                records = await reader.getmany(timeout=1.0)
            finally:
                await reader.stop()
            print(decode_request(records[0].value).sql)

        asyncio.run(main())
        """
        )
    )
    assert run_python(code).splitlines() == ["timed out", "SELECT $1::int"]


def test_the_distribution_splits_caller_and_adapter_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        # "prometheus-client>=0.20" -> "prometheus_client"; "querybus[adapter]" stays whole.
        out = set()
        for req in requirements:
            for stop in "<>=!~; ":
                req = req.split(stop, 1)[0]
            out.add(req.replace("-", "_").lower())
        return out

    assert names(project["dependencies"]) == {"aiokafka", "msgspec"}
    adapter = names(project["optional-dependencies"]["adapter"])
    assert SERVER_LIBRARIES | {"typer", "rich", "httpx"} <= adapter
    assert "querybus[adapter]" in names(project["optional-dependencies"]["dev"])


def test_the_command_line_says_what_to_install() -> None:
    blocked = sorted(SERVER_LIBRARIES | ADAPTER_EXTRA_ONLY)
    launch = "from querybus.cli.launcher import main\nmain()\n"
    code = f"BLOCKED = {blocked!r}\n" + _BLOCKER + launch
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "pip install 'querybus[adapter]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_direct_mode_without_the_adapter_extra_says_what_to_install() -> None:
    blocked = sorted(SERVER_LIBRARIES | ADAPTER_EXTRA_ONLY)
    code = (
        f"BLOCKED = {blocked!r}\n"
        + _BLOCKER
        + textwrap.dedent(
            """
        from querybus import QueryClient
        from querybus.errors import ConfigurationError

        for options in ({"mode": "direct"}, {"fallback": "direct"}):
            try:
                QueryClient("127.0.0.1:1", dsn="postgresql://app@db/app", **options)
            except ConfigurationError as exc:
                print(exc)
        """
        )
    )
    lines = run_python(code).splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "pip install 'querybus[adapter]'" in line
        assert "direct mode" in line
