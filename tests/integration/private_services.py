"""Private PostgreSQL primaries and Kafka brokers for tests that stop them.

The outage tests stop and restart a database or a broker: they use their own
instances (free 127.0.0.1 ports, data in a temporary directory under
``.stack/``), started and stopped here, so the shared stack of
``scripts/services.sh`` is never touched. Everything is removed afterwards.

The blocking steps (``pg_ctl``, waiting for a JVM to exit) are plain functions;
tests whose adapter runs meanwhile call them through ``asyncio.to_thread`` so
the event loop (heartbeats, the adapter) keeps running.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import asyncpg
from tests.helpers import wait_for
from tests.integration.pg_cluster import PgCluster, PgToolError, pg_bin, tail
from tests.integration.routing_helpers import free_port
from tests.stack import REPO

from querybus.config import PostgresSettings

__all__ = ["PrivateKafka", "PrivatePostgres", "private_kafka", "private_postgres"]

_STACK = REPO / ".stack"
KAFKA_LIB = _STACK / "cache" / "kafka-lib"
_KAFKA_TEMPLATE = REPO / "infra" / "kafka" / "server.properties.template"
_KAFKA_LOG4J = REPO / "infra" / "kafka" / "log4j2.xml"

# Appended to the stack's template: a quicker, smaller broker for tests.
_KAFKA_TEST_SETTINGS = """
# --- private test broker (tests/integration/private_services.py) ---
num.network.threads=1
num.io.threads=2
background.threads=2
log.segment.bytes=16777216
"""


def _private_root(kind: str) -> Path:
    root = _STACK / f"{kind}-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    return root


# -- PostgreSQL ----------------------------------------------------------------------------


ADAPTER_ROLE = "querybus_adapter"


@dataclass
class PrivatePostgres:
    """A PostgreSQL primary of one test: ``stop()`` and ``start()`` at will.

    ``start()`` after ``stop()`` brings back the same server: same port, same data.
    """

    root: Path
    port: int
    password: str
    bin: Path = field(default_factory=pg_bin)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def dsn(self) -> str:
        """The superuser's DSN: for setting up and checking."""
        return self._dsn("postgres")

    @property
    def adapter_dsn(self) -> str:
        """An ordinary login role's DSN (made by :meth:`add_adapter_role`), as
        adapters must use."""
        return self._dsn(ADAPTER_ROLE)

    def _dsn(self, user: str) -> str:
        return PostgresSettings(
            host="127.0.0.1",
            port=self.port,
            database="postgres",
            user=user,
            password=self.password,
        ).dsn

    async def add_adapter_role(self) -> None:
        """Create the adapters' login role (no superuser; DML on the superuser's
        tables, CREATE on schema public for the idempotency table)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                f"CREATE ROLE {ADAPTER_ROLE} LOGIN PASSWORD '{self.password}';"
                f"GRANT CREATE ON SCHEMA public TO {ADAPTER_ROLE};"
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                f"TO {ADAPTER_ROLE};"
                f"ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
                f"TO {ADAPTER_ROLE};"
            )
        finally:
            await conn.close()

    @property
    def cluster(self) -> PgCluster:
        return PgCluster(data=self.data, log_file=self.log_file, bin=self.bin)

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        try:
            self.cluster.initdb(
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self.cluster.start(
            self.port,
            self.root,
            "max_connections=50",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        )

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are terminated, the server shuts down cleanly."""
        self.cluster.stop()

    def running(self) -> bool:
        return self.cluster.running()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL primary (database ``postgres``); stopped and
    deleted afterwards, whatever state the test left it in."""
    root = _private_root("outage-pg")
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        root.chmod(0o700)
        pg = PrivatePostgres(root=root, port=free_port(), password=secrets.token_hex(16))
        pg.init()
        try:
            pg.start()
            yield pg
        finally:
            if pg.running():
                with contextlib.suppress(PgToolError, subprocess.TimeoutExpired):
                    pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- Kafka -----------------------------------------------------------------------------------


def _load_probe() -> ModuleType:
    # scripts/ is not a package: load the stack's probe (a Metadata request) by path.
    spec = importlib.util.spec_from_file_location(
        "querybus_stack_probe", REPO / "scripts" / "stack_probe.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_probe = _load_probe()


def _kafka_ready(port: int) -> bool:
    try:
        brokers, controller = _probe.kafka_metadata("127.0.0.1", port, timeout=2.0)
    except (OSError, ValueError, struct.error):
        return False
    return bool(brokers >= 1 and controller >= 0)


@dataclass
class PrivateKafka:
    """A single-node KRaft broker of one test: ``stop()`` and ``start()`` at will.

    ``start()`` after ``stop()`` brings back the same broker: same ports, same data
    (topics, committed offsets, unread records).
    """

    root: Path
    port: int
    controller_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def server_log(self) -> Path:
        return self.root / "logs" / "server.log"

    def _jvm(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            # Start fast on 2 shared cores; the test's load is tiny.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile=file:{_KAFKA_LOG4J}",
            f"-Dkafka.logs.dir={self.root / 'logs'}",
            "-cp",
            f"{KAFKA_LIB}/*",
        ]

    def format(self) -> None:
        assert (KAFKA_LIB / ".complete").exists(), f"no Kafka jars in {KAFKA_LIB}"
        (self.root / "logs").mkdir(exist_ok=True)
        text = (
            _KAFKA_TEMPLATE.read_text()
            .replace("@PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@LOG_DIR@", str(self.root / "data"))
        )
        self.config.write_text(text + _KAFKA_TEST_SETTINGS)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        proc = subprocess.run(
            [
                *self._jvm(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {proc.stdout}\n{proc.stderr}")

    def start(self) -> None:
        """Launch the broker (returns at once; see :meth:`wait_ready`)."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        with (self.root / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [*self._jvm(), "kafka.Kafka", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Poll until a Metadata request succeeds; return the seconds it took.

        Raises:
            AssertionError: the broker exited or is not ready within ``timeout``.
        """
        proc = self.proc
        assert proc is not None, "broker not started"

        async def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"kafka exited with {proc.returncode}:\n{tail(self.root / 'stdout.log')}"
                    f"\n{tail(self.server_log)}"
                )
            return await asyncio.to_thread(_kafka_ready, self.port)

        started = time.monotonic()
        try:
            await wait_for(ready, timeout, interval=0.2, message=f"kafka on {self.bootstrap} ready")
        except AssertionError as exc:
            if proc.poll() is None:  # not ready in time (an exit already says why)
                exc.add_note(tail(self.server_log))
            raise
        return time.monotonic() - started

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown) and wait; SIGKILL when it takes too long."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@contextlib.contextmanager
def private_kafka() -> Iterator[PrivateKafka]:
    """A formatted and launched private broker (``await kafka.wait_ready()`` before
    use); stopped (killed if need be) and deleted afterwards."""
    root = _private_root("outage-kafka")
    kafka: PrivateKafka | None = None
    try:
        port = free_port()
        controller_port = free_port()
        while controller_port == port:
            controller_port = free_port()
        kafka = PrivateKafka(root=root, port=port, controller_port=controller_port)
        kafka.format()
        kafka.start()
        yield kafka
    finally:
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(root, ignore_errors=True)
