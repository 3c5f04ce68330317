"""The full scenario of issue 9 on the secured broker, and no secret anywhere.

An operator's setup: a topic prefix on the SASL_SSL broker, the topics
created by the admin, the ACLs applied with the real ``querybus acl``
command; PostgreSQL roles and a table with a row-level security policy on
the token's ``tenant`` claim. A real ``querybus serve`` process (identities,
a role policy with a rate limit, DEBUG logging) logs in as ``adapter``;
alice (tenant a) and bob (tenant b) are clients logged in as themselves,
each reading replies on a topic of their own.

They insert rows whose values are secrets, read them back (each tenant only
its own), fail in ways whose PostgreSQL messages quote a value, send a
forged and an expired token, flood, write idempotently and send a record
that is no request. Then every known secret — Kafka and database passwords,
the JWT secret, every token and its signature, every parameter value — is
looked for in the adapter's log, the test's own logs, every record (value,
key, headers) of every topic under the prefix, /metrics and /health, and
the reprs of the objects holding them. A finding names the place and the
secret's label, never the secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tests.helpers import collect, wait_for
from tests.integration.cli_helpers import run_cli
from tests.integration.scenario_helpers import (
    AdapterProcess,
    Findings,
    Secret,
    found_in,
    read_topic,
    redacted,
    token_secrets,
)
from tests.integration.secure_kafka import REQUEST_TIMEOUT, SecureBus, admin_env, sasl, transport
from tests.stack import Stack, UniqueNames

from querybus.client import QueryClient
from querybus.config import AdapterSettings
from querybus.errors import (
    AuthenticationError,
    DataError,
    InsufficientPrivilegeError,
    RateLimitedError,
    TokenExpiredError,
)
from querybus.identity import IdentitySettings, issue_token
from querybus.protocol import Headers
from querybus.sqlstates import UniqueViolationError
from querybus.transport import Record

CLI_BOUND = 60.0
#: The logger of the known leak (see the end of the test).
#: aiokafka logs each value it produces here, at DEBUG (masked by querybus).
PRODUCER_LOGGER = "aiokafka.producer.producer"
BOUND = REQUEST_TIMEOUT * 2
FLOOD = 30


@pytest.fixture
async def sbus(stack: Stack, unique: UniqueNames) -> AsyncIterator[SecureBus]:
    secure = stack.secure_kafka
    prefix = unique("sec-scn") + "."
    admin = transport(secure.sasl_ssl, sasl(secure, "admin", "SCRAM-SHA-512"), "sec-scn-admin")
    b = SecureBus(secure, prefix, admin)
    try:
        yield b
    finally:
        await b.close()


async def _acl(sbus: SecureBus, cwd: Path, *args: str) -> str:
    env = {**os.environ, **admin_env(sbus.secure, sbus.prefix)}
    code, out, err = await run_cli(env, cwd, "acl", *args, "--apply", bound=CLI_BOUND)
    assert code == 0, err
    return out


def _adapter_env(
    stack: Stack, sbus: SecureBus, *, group: str, jwt_secret: str, roles: str, policy: Path
) -> dict[str, str]:
    """The environment of ``querybus serve``: nothing of the caller's querybus,
    Kafka or PostgreSQL settings (nor the stack's other passwords), only what
    an adapter of this scenario is given."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUERYBUS_", "KAFKA_", "POSTGRES_", "ETCD_", "CONSUL_", "COLUMNS"))
    }
    secure = sbus.secure
    return {
        **keep,
        "KAFKA_BOOTSTRAP_SERVERS": secure.sasl_ssl,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "adapter",
        "KAFKA_SASL_PASSWORD": secure.passwords["adapter"],
        "KAFKA_SSL_CAFILE": secure.cafile,
        "QUERYBUS_TOPIC_PREFIX": sbus.prefix,
        "QUERYBUS_REQUEST_PARTITIONS": "2",
        "QUERYBUS_RESPONSE_PARTITIONS": "2",
        "QUERYBUS_GROUP_ID": group,
        "QUERYBUS_JWT_SECRET": jwt_secret,
        "QUERYBUS_ROLES": roles,
        "QUERYBUS_POLICY_FILE": str(policy),
        "QUERYBUS_HTTP_PORT": "0",
        "QUERYBUS_POOL_SIZE": "2",
        "QUERYBUS_SHUTDOWN_GRACE": "10",
        "QUERYBUS_REGISTRY": "",
        "POSTGRES_HOST": stack.pg.host,
        "POSTGRES_PORT": str(stack.pg.port),
        "POSTGRES_DATABASE": stack.pg.database,
        "POSTGRES_USER": stack.pg.user,
        "POSTGRES_PASSWORD": stack.pg.password,
    }


async def test_full_scenario_leaks_no_secret(
    sbus: SecureBus,
    stack: Stack,
    unique: UniqueNames,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="querybus")
    # Other tests (the CLI's logging set-up) may have raised aiokafka's level:
    # this one needs its DEBUG records, payloads and all, to search them.
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    secure, topics = sbus.secure, sbus.topics
    run = uuid.uuid4().hex

    # -- the secrets ------------------------------------------------------------------
    jwt_secret = f"jwt-secret-{run}-{uuid.uuid4().hex}"[:48]
    assert len(jwt_secret) == 48
    forger_secret = f"forger-secret-{uuid.uuid4().hex}-{uuid.uuid4().hex}"[:48]
    assert stack.pg.password
    assert stack.admin.password
    config_secrets = [
        *(
            Secret(f"kafka password of {u}", secure.passwords[u])
            for u in ("admin", "adapter", "alice", "bob")
        ),
        Secret("JWT secret", jwt_secret),
        Secret("database password (POSTGRES_PASSWORD)", stack.pg.password),
        Secret("database superuser password (POSTGRES_ADMIN_PASSWORD)", stack.admin.password),
    ]
    tokens: list[Secret] = []
    params: list[Secret] = []

    def param(label: str) -> str:
        value = f"param-secret-{uuid.uuid4().hex}"
        params.append(Secret(f"parameter value {label}", value))
        return value

    # -- PostgreSQL: roles, a table with RLS on the token's tenant ---------------------------
    p = unique.ident("scn")
    agent, flood_role, items = f"{p}_agent", f"{p}_flood", f"{p}_items"
    login = stack.pg.user
    claim = "(current_setting('request.jwt.claims', true)::json->>'tenant')"
    pg = await asyncpg.connect(stack.admin_dsn)
    adapter: AdapterProcess | None = None
    clients: list[QueryClient] = []
    try:
        for sql in (
            *(f"CREATE ROLE {r} NOLOGIN" for r in (agent, flood_role)),
            *(f"GRANT {r} TO {login}" for r in (agent, flood_role)),
            f"CREATE TABLE {items} (id bigserial PRIMARY KEY, "
            f"tenant text NOT NULL DEFAULT {claim}, body text, UNIQUE (tenant, body))",
            f"ALTER TABLE {items} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {p}_tenant ON {items} USING (tenant = {claim}) "
            f"WITH CHECK (tenant = {claim})",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {items} TO {agent}",
            f"GRANT USAGE ON SEQUENCE {items}_id_seq TO {agent}",
        ):
            await pg.execute(sql)

        # -- Kafka: topics by the admin, ACLs by the real `querybus acl --apply` ---------------
        group = unique("sec-scn-group")
        sbus.groups.add(group)
        alice_topic, bob_topic = sbus.reply_topic("alice"), sbus.reply_topic("bob")
        await sbus.protocol_topics()
        await sbus.create_topics(alice_topic, bob_topic)
        printed = [
            await _acl(sbus, tmp_path, "adapter", "--principal", "User:adapter", "--group", group),
            await _acl(sbus, tmp_path, "client", "--principal", "User:alice"),
            await _acl(sbus, tmp_path, "client", "--principal", "User:bob"),
        ]
        await sbus.settled(sum(len(out.splitlines()) for out in printed))

        # -- the adapter process ------------------------------------------------------------
        policy = tmp_path / "policy.toml"
        policy.write_text(f"[roles.{flood_role}]\nrate = 1.0\nburst = 3\n")
        env = _adapter_env(
            stack,
            sbus,
            group=group,
            jwt_secret=jwt_secret,
            roles=f"{agent},{flood_role}",
            policy=policy,
        )
        adapter = await AdapterProcess.start(
            env, tmp_path, tmp_path / "adapter.log", "--log-level", "DEBUG", "--no-register"
        )
        base = await adapter.http_base(config_secrets)
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await wait_for(ready, 60.0, interval=0.1, message="/health/ready")

            # -- the clients --------------------------------------------------------------
            def token(label: str, **kwargs: Any) -> str:
                t = issue_token(kwargs.pop("secret", jwt_secret), **kwargs)
                tokens.extend(token_secrets(f"token of {label}", t))
                return t

            alice_token = token("alice", role=agent, subject="alice", claims={"tenant": "a"})
            bob_token = token("bob", role=agent, subject="bob", claims={"tenant": "b"})
            forged_token = token(
                "a forger (wrong key)",
                secret=forger_secret,
                role=agent,
                subject="alice",
                claims={"tenant": "a"},
            )
            expired_token = token(
                "alice (expired)",
                role=agent,
                subject="alice",
                claims={"tenant": "a"},
                ttl=60,
                now=time.time() - 3600,
            )
            flood_token = token(
                "alice's batch job", role=flood_role, subject="alice-batch", claims={"tenant": "a"}
            )
            alice_settings = sbus.settings(sasl(secure, "alice"), reply_topic=alice_topic)
            bob_settings = sbus.settings(
                sasl(secure, "bob", "SCRAM-SHA-512"), reply_topic=bob_topic
            )

            async def client(settings: Any, tok: str, timeout: float = 30.0) -> QueryClient:
                c = QueryClient(settings, token=tok, timeout=timeout)
                clients.append(c)
                await asyncio.wait_for(c.start(), BOUND)
                return c

            alice = await client(alice_settings, alice_token, timeout=60.0)
            bob = await client(bob_settings, bob_token)
            forger = await client(alice_settings, forged_token)
            late = await client(alice_settings, expired_token)
            batch = await client(alice_settings, flood_token)

            audit_expected: Counter[tuple[str | None, str | None, str]] = Counter()

            def audited(subject: str | None, role: str | None, outcome: str, n: int = 1) -> None:
                audit_expected[(subject, role, outcome)] += n

            # The first request also waits for the adapter's group assignment.
            assert await alice.fetchval("SELECT 1") == 1
            audited("alice", agent, "ok")

            # -- the scenario -------------------------------------------------------------
            a_values = [param(f"alice insert {n}") for n in range(3)]
            b_values = [param(f"bob insert {n}") for n in range(2)]
            for v in a_values:
                await alice.execute(f"INSERT INTO {items} (body) VALUES ($1)", v)
                audited("alice", agent, "ok")
            for v in b_values:
                await bob.execute(f"INSERT INTO {items} (body) VALUES ($1)", v)
                audited("bob", agent, "ok")
            seen_a = {r["body"] for r in await alice.fetch(f"SELECT body FROM {items}")}
            seen_b = {r["body"] for r in await bob.fetch(f"SELECT body FROM {items}")}
            audited("alice", agent, "ok")
            audited("bob", agent, "ok")
            # (Compared as booleans: a failure must not print the values.)
            own_a, own_b = seen_a == set(a_values), seen_b == set(b_values)
            assert own_a, f"alice must see exactly her 3 rows, saw {len(seen_a)}"
            assert own_b, f"bob must see exactly his 2 rows, saw {len(seen_b)}"

            # PostgreSQL quotes the value it cannot cast: the reply masks it.
            with pytest.raises(DataError) as cast:
                await alice.fetchval("SELECT $1::text::int", param("cast to int"))
            audited("alice", agent, "query")
            assert cast.value.sqlstate == "22P02"
            masked = 'integer: "***"' in cast.value.message
            assert masked, "the error reply does not mask the value PostgreSQL quotes"
            # A duplicate key (PostgreSQL leaves the key out of its DETAIL
            # under row-level security; the secret search below checks the rest).
            with pytest.raises(UniqueViolationError) as twice:
                await alice.execute(f"INSERT INTO {items} (body) VALUES ($1)", a_values[0])
            audited("alice", agent, "query")
            assert twice.value.sqlstate == "23505"
            # A row for the other tenant is refused by the policy's WITH CHECK.
            with pytest.raises(InsufficientPrivilegeError):
                await bob.execute(
                    f"INSERT INTO {items} (tenant, body) VALUES ('a', $1)",
                    param("bob forges a row"),
                )
            audited("bob", agent, "query")

            # A token signed with another key, and an expired one: nothing runs.
            with pytest.raises(AuthenticationError) as forged:
                await forger.execute(
                    f"INSERT INTO {items} (body) VALUES ($1)", param("with a forged token")
                )
            assert type(forged.value) is AuthenticationError
            audited(None, None, "unauthenticated")
            with pytest.raises(TokenExpiredError):
                await late.fetchval("SELECT $1::text", param("with an expired token"))
            audited(None, None, "token_expired")

            # A flood from one subject: its burst is served, the rest throttled.
            flood_value = param("of the flood")
            outcomes = await asyncio.gather(
                *(batch.fetchval("SELECT $1::text", flood_value) for _ in range(FLOOD)),
                return_exceptions=True,
            )
            served = [o for o in outcomes if o == flood_value]
            limited = [o for o in outcomes if isinstance(o, RateLimitedError)]
            assert len(served) + len(limited) == FLOOD, [type(o).__name__ for o in outcomes]
            assert len(served) >= 3
            assert limited, "the flood was not rate-limited"
            assert all(flood_value not in str(e) for e in limited)
            audited("alice-batch", flood_role, "ok", len(served))
            audited("alice-batch", flood_role, "rate_limited", len(limited))

            # An idempotent write: the replay answers from the first run.
            key = uuid.uuid4().hex
            keyed = param("idempotent insert")
            sql = f"INSERT INTO {items} (body) VALUES ($1) RETURNING id"
            first = await alice.fetchval(sql, keyed, idempotency_key=key)
            again = await alice.fetchval(sql, keyed, idempotency_key=key)
            audited("alice", agent, "ok", 2)
            assert first == again
            assert await pg.fetchval(f"SELECT count(*) FROM {items} WHERE body = $1", keyed) == 1
            assert sorted(await pg.fetch(f"SELECT tenant, count(*) FROM {items} GROUP BY 1")) == [
                ("a", 4),
                ("b", 2),
            ]

            # A record that is no request, with alice's token: dead-lettered
            # (without the token) and answered with a protocol error.
            alice_raw = sbus.transport(sasl(secure, "alice"), "sec-scn-raw")
            producer = alice_raw.producer()
            sbus.on_close(producer.stop)
            await asyncio.wait_for(producer.start(), BOUND)
            garbage_id = uuid.uuid4().hex
            await producer.send(
                topics.request,
                b"this is not a querybus request",
                headers=[
                    (Headers.CORRELATION_ID, garbage_id.encode()),
                    (Headers.REPLY_TOPIC, alice_topic.encode()),
                    (Headers.REPLY_PARTITION, b"0"),
                    (Headers.AUTHORIZATION, alice_token.encode()),
                ],
            )
            dlq_reader = sbus.admin.partition_reader(topics.dead_letter, start_at="beginning")
            sbus.on_close(dlq_reader.stop)
            await dlq_reader.start()
            await collect(
                dlq_reader,
                1,
                timeout=BOUND,
                where=lambda r: r.header(Headers.CORRELATION_ID) == garbage_id.encode(),
            )

            # -- what the adapter shows over HTTP ------------------------------------------
            bodies = {
                path: (await http.get(path)).text
                for path in ("/metrics", "/health", "/health/ready", "/health/live")
            }

        # The objects holding secrets, as they would be printed.
        reprs = {
            **{f"repr of client {c.client_id}": repr(c) for c in clients},
            **{f"repr of the attributes of client {c.client_id}": repr(vars(c)) for c in clients},
            "repr of alice's BusSettings": repr(alice_settings),
            "repr of bob's BusSettings": repr(bob_settings),
            "repr of alice's KafkaSecurity": repr(alice_settings.security),
            "repr of the admin's KafkaSecurity": repr(sasl(secure, "admin", "SCRAM-SHA-512")),
            "repr of the adapter's KafkaSecurity": repr(sasl(secure, "adapter", "SCRAM-SHA-512")),
            "repr of IdentitySettings": repr(
                IdentitySettings(secret=jwt_secret, roles=frozenset({agent, flood_role}))
            ),
            "repr of the adapter's PostgresSettings": repr(stack.pg),
            "repr of the admin's PostgresSettings": repr(stack.admin),
            "repr of AdapterSettings": repr(AdapterSettings.from_env(env)),
        }

        for c in clients:
            await c.stop()
        # A clean stop: audit records and error copies are written before it ends.
        code = await adapter.stop()
        log_text = adapter.text()
        assert code == 0, redacted(log_text[-3000:], [*config_secrets, *tokens, *params])

        # -- every record of every topic under the prefix, read as the admin ---------------
        cluster = await sbus.admin._cluster()
        names = sorted(n for n in cluster.topics() if n.startswith(sbus.prefix))
        # The adapter's inbox (interactive transactions) outlives it, by design.
        inboxes = {n for n in names if n.startswith(topics.inbox_prefix)}
        assert len(inboxes) == 1, inboxes
        assert set(names) - inboxes == {
            topics.request,
            topics.response,
            topics.error,
            topics.dead_letter,
            topics.routing_decisions,
            topics.audit,
            alice_topic,
            bob_topic,
        }
        records = {name: await read_topic(sbus.admin, name) for name in names}
    finally:
        for c in clients:
            await c.stop()
        if adapter is not None:
            await adapter.stop()
        await sbus.close()  # nothing of the adapter's may hold the roles any more
        await pg.execute(f"DROP TABLE IF EXISTS {items} CASCADE")
        for r in (agent, flood_role):
            await pg.execute(f"DROP OWNED BY {r} CASCADE")
            await pg.execute(f"DROP ROLE IF EXISTS {r}")
        await pg.close()

    # -- positive facts: the scenario really happened -------------------------------------
    assert log_text.strip(), "the adapter's log is empty"
    assert " DEBUG querybus" in log_text, "the adapter logged nothing at DEBUG"
    audit_docs = [json.loads(r.value or b"{}") for r in records[topics.audit]]
    assert Counter((d.get("subject"), d.get("role"), d["outcome"]) for d in audit_docs) == (
        audit_expected
    )
    assert all("params" not in d for d in audit_docs)
    errors = [json.loads(r.value or b"{}")["error"] for r in records[topics.error]]
    assert Counter((e["code"], e.get("sqlstate")) for e in errors) == Counter(
        {
            ("query", "22P02"): 1,
            ("query", "23505"): 1,
            ("query", "42501"): 1,
            ("unauthenticated", None): 1,
            ("token_expired", None): 1,
            ("protocol", None): 1,
        }
    )
    assert len(records[topics.dead_letter]) == 1
    dead = records[topics.dead_letter][0]
    assert dead.header(Headers.DLQ_REASON)
    assert dead.header(Headers.AUTHORIZATION) is None
    # The search finds what is there: every value and token the callers sent
    # is on the request topic, and alice's rows in her replies.
    sent = b"".join(
        (r.value or b"") + b"".join(v for _, v in r.headers) for r in records[topics.request]
    )
    assert set(found_in(sent, [*params, *tokens])) == {s.label for s in [*params, *tokens]}
    assert set(found_in(b"".join(r.value or b"" for r in records[alice_topic]), params)) >= {
        s.label for s in params if s.value in a_values
    }
    replies = [*records[alice_topic], *records[bob_topic]]
    failures = [r for r in replies if _status(r) == "error"]
    assert len(failures) == len(errors) + len(limited)
    assert len(records[topics.response]) == 0  # everyone has a reply topic of their own
    assert "querybus_requests_total" in bodies["/metrics"]

    # -- and no secret anywhere -------------------------------------------------------
    everything = [*config_secrets, *tokens, *params]
    no_params = [*config_secrets, *tokens]
    found = Findings()
    found.check_lines("the adapter's log file (stdout and stderr)", log_text, everything)
    # The test process's own log records, as its handler formats them
    # (tracebacks included): aiokafka's producer logs every value it sends at
    # DEBUG, which querybus masks (transport.kafka.PayloadFilter).
    producer_records = 0
    for logged in caplog.records:
        text = caplog.handler.format(logged)
        place = f"the test process's log records from {logged.name} ({logged.levelname})"
        producer_records += logged.name == PRODUCER_LOGGER
        found.check(place, text, everything)
    assert producer_records, "aiokafka's producer logged nothing: the check above saw nothing"
    # Nothing of the above may be printed if this test fails.
    caplog.clear()
    for name, recs in records.items():
        for record in recs:
            if name == topics.request or name in inboxes:
                # The callers' own values and tokens travel here; nothing else may.
                found.check_record(record, config_secrets)
            elif name in (alice_topic, bob_topic) and _status(record) == "ok":
                # The rows a caller asked for are its own; everything else is checked.
                found.check_record(record, everything, value=False)
                found.check_record(record, no_params)
            else:
                found.check_record(record, everything)
    for path, body in bodies.items():
        found.check(f"the adapter's {path}", body, everything)
    for where, text in reprs.items():
        found.check(where, text, everything)
    if found:
        pytest.fail("secrets found (place: which secret):\n" + found.report(), pytrace=False)


def _status(record: Record) -> Any:
    return json.loads(record.value or b"{}").get("status")
