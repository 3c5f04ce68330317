"""The local services the integration tests run against (``scripts/services.sh``).

Settings come from the environment (``. .stack/env``, as ``make test`` does).
When they are missing, :func:`load_stack` runs ``scripts/services.sh up`` itself
and reads ``.stack/env``, so a plain ``.venv/bin/pytest`` works too. It never
skips: a stack that cannot start is an error.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from querybus.config import PostgresSettings

REPO = Path(__file__).resolve().parent.parent
SERVICES_SCRIPT = REPO / "scripts" / "services.sh"
ENV_FILE = REPO / ".stack" / "env"

REQUIRED_VARS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_PASSWORD",
    "POSTGRES_ADMIN_USER",
    "POSTGRES_ADMIN_PASSWORD",
    "POSTGRES_REPLICA_HOST",
    "POSTGRES_REPLICA_PORT",
    "ETCD_ENDPOINTS",
    "KAFKA_SECURE_SASL_SSL",
    "KAFKA_SECURE_SSL",
    "KAFKA_SECURE_CAFILE",
    "KAFKA_SECURE_CERT_DIR",
    "KAFKA_SECURE_PASSWORD_ADMIN",
)

#: The SASL users of the secured broker (``KAFKA_SECURE_PASSWORD_<NAME>``).
SECURE_USERS = ("admin", "adapter", "alice", "bob", "carol")


class StackUnavailableError(RuntimeError):
    """The local services are not configured and could not be started."""


@dataclass(frozen=True, slots=True)
class SecureKafka:
    """The secured broker (TLS, SASL, mutual TLS, ACLs; ``scripts/services.sh``).

    ``sasl_ssl`` and ``ssl`` are its two client listeners; ``cert_dir`` holds
    ``ca.crt`` and the client certificates ``<name>.crt``/``<name>.key``
    (alice, bob; mallory's is signed by ``untrusted-ca.crt``, which the broker
    does not trust). ``admin`` is its super user.
    """

    sasl_ssl: str
    ssl: str
    cafile: str
    cert_dir: str
    passwords: Mapping[str, str] = dataclasses.field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecureKafka:
        return cls(
            sasl_ssl=env["KAFKA_SECURE_SASL_SSL"],
            ssl=env["KAFKA_SECURE_SSL"],
            cafile=env["KAFKA_SECURE_CAFILE"],
            cert_dir=env["KAFKA_SECURE_CERT_DIR"],
            passwords={
                name: env[f"KAFKA_SECURE_PASSWORD_{name.upper()}"]
                for name in SECURE_USERS
                if env.get(f"KAFKA_SECURE_PASSWORD_{name.upper()}")
            },
        )


@dataclass(frozen=True, slots=True)
class Stack:
    """Addresses of the running local services.

    ``pg`` is the adapters' login (a non-superuser role); ``admin`` is the
    cluster's superuser, for setting up and checking behind the bus's back.
    """

    kafka_bootstrap: str
    pg: PostgresSettings
    admin: PostgresSettings
    replica_host: str
    replica_port: int
    etcd_endpoint: str
    secure_kafka: SecureKafka

    @property
    def pg_dsn(self) -> str:
        return self.pg.dsn

    @property
    def replica(self) -> PostgresSettings:
        return dataclasses.replace(self.pg, host=self.replica_host, port=self.replica_port)

    @property
    def replica_dsn(self) -> str:
        return self.replica.dsn

    @property
    def admin_dsn(self) -> str:
        return self.admin.dsn

    @property
    def admin_replica_dsn(self) -> str:
        return dataclasses.replace(self.admin, host=self.replica_host, port=self.replica_port).dsn

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Stack:
        return cls(
            kafka_bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"],
            pg=PostgresSettings.from_env(env),
            admin=dataclasses.replace(
                PostgresSettings.from_env(env),
                user=env["POSTGRES_ADMIN_USER"],
                password=env["POSTGRES_ADMIN_PASSWORD"],
            ),
            replica_host=env["POSTGRES_REPLICA_HOST"],
            replica_port=int(env["POSTGRES_REPLICA_PORT"]),
            etcd_endpoint=env["ETCD_ENDPOINTS"].split(",")[0].strip(),
            secure_kafka=SecureKafka.from_env(env),
        )


def parse_env_file(path: Path) -> dict[str, str]:
    """Read the ``export NAME=value`` lines written by ``scripts/services.sh up``."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if sep:
            parts = shlex.split(value)
            values[name.strip()] = parts[0] if parts else ""
    return values


def load_stack(*, timeout: float = 300.0) -> Stack:
    """Return the running stack, starting it with ``scripts/services.sh up`` if needed.

    When the stack had to be read from ``.stack/env``, its values are also put in
    ``os.environ`` so that subprocesses the tests start (``querybus serve``, …)
    see the same services.

    Raises:
        StackUnavailableError: the services could not be started or read.
    """
    if all(os.environ.get(name) for name in REQUIRED_VARS):
        return Stack.from_env(os.environ)
    try:
        proc = subprocess.run(
            [str(SERVICES_SCRIPT), "up"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackUnavailableError(f"`scripts/services.sh up` could not run: {exc}") from exc
    if proc.returncode != 0:
        raise StackUnavailableError(
            f"`scripts/services.sh up` failed with exit code {proc.returncode}:\n"
            f"{proc.stderr[-4000:]}"
        )
    try:
        values = parse_env_file(ENV_FILE)
        stack = Stack.from_env(values)
    except (OSError, KeyError, ValueError) as exc:
        raise StackUnavailableError(f"cannot read {ENV_FILE}: {exc!r}") from exc
    os.environ.update(values)
    return stack


class UniqueNames:
    """Fresh names so tests never collide: ``unique("topic")`` → ``"t-topic-1a2b3c4d"``.

    ``unique.ident("orders")`` → ``"t_orders_1a2b3c4d"``: a valid unquoted SQL
    identifier, for tables and other database objects.
    """

    #: Every topic name (or prefix) handed out in this process, so the session
    #: deletes only its own topics (another session may share the broker).
    made: ClassVar[set[str]] = set()

    @classmethod
    def remember(cls, name: str) -> str:
        """Record a topic name (or prefix) a test made without ``unique()``."""
        cls.made.add(name)
        return name

    def __call__(self, kind: str = "x") -> str:
        return self.remember(f"t-{kind}-{uuid.uuid4().hex[:8]}")

    def ident(self, kind: str = "x") -> str:
        return f"t_{kind}_{uuid.uuid4().hex[:8]}".lower()
