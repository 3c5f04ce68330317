"""Caller identities end to end (issue 9): signed tokens, PostgreSQL roles and
row-level security, role escapes, per-role limits, the audit topic.

Real Kafka, real PostgreSQL: the adapter logs in as the stack's ordinary
role ``querybus_adapter`` (PostgREST's "authenticator"), which is granted
the NOLOGIN roles each test creates; RLS policies read the token's claims
from ``request.jwt.claims``. Each test's roles, table and functions have
unique names and are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from tests.helpers import collect, eventually
from tests.integration.conftest import Bus, kafka_transport
from tests.stack import Stack, UniqueNames

from querybus.adapter.roles import RolePolicies
from querybus.adapter.service import AdapterService
from querybus.client import QueryClient
from querybus.config import AdapterSettings
from querybus.database.executor import PostgresExecutor
from querybus.errors import (
    AuthenticationError,
    InsufficientPrivilegeError,
    PermissionDeniedError,
    QueryBusError,
    RateLimitedError,
    RequestRejectedError,
    TokenExpiredError,
)
from querybus.identity import IdentitySettings, TokenVerifier

SECRET = "test-secret-" + "x" * 40
OTHER_SECRET = "another-secret-" + "y" * 40
AUDIENCE = "querybus-tests"


@dataclass
class World:
    """One test's roles, table and escape functions, and ways to reach them."""

    prefix: str
    bus: Bus
    stack: Stack
    admin: asyncpg.Connection
    tmp: Path
    adapter: AdapterService | None = None
    clients: list[QueryClient] = field(default_factory=list)

    @property
    def agent(self) -> str:
        return f"{self.prefix}_agent"

    @property
    def reader(self) -> str:
        return f"{self.prefix}_reader"

    @property
    def anon(self) -> str:
        return f"{self.prefix}_anon"

    @property
    def outside(self) -> str:
        """Granted to the login, but not in the allowlist."""
        return f"{self.prefix}_outside"

    @property
    def items(self) -> str:
        return f"{self.prefix}_items"

    def token(
        self,
        role: str | None = None,
        *,
        sub: str = "agent-a",
        tenant: str = "a",
        secret: str = SECRET,
        ttl: float = 300.0,
        **claims: Any,
    ) -> str:
        now = time.time()
        body = {
            "sub": sub,
            "role": role or self.agent,
            "tenant": tenant,
            "aud": AUDIENCE,
            "iat": int(now),
            "exp": int(now + ttl),
            **claims,
        }
        return jwt.encode(body, secret, algorithm="HS256")

    async def start(
        self,
        *,
        anon: bool = False,
        policy: str = "",
        jwks: Path | None = None,
        pool_size: int = 1,
        audit_parameters: bool = False,
    ) -> AdapterService:
        """The adapter, with identities on (one connection: every request of a
        test meets whatever an earlier one left)."""
        identity = IdentitySettings(
            secret=SECRET,
            jwks_file=jwks,
            audience=AUDIENCE,
            roles=frozenset({self.agent, self.reader}),
            anon_role=self.anon if anon else None,
            jwks_reload=0.0,
        )
        policy_file = self.tmp / "policy.toml"
        policy_file.write_text(policy)
        transport = kafka_transport(self.stack, self.bus.settings)
        svc = AdapterService(
            transport,
            PostgresExecutor(
                self.stack.pg_dsn, pool_size=pool_size, roles=sorted(identity.allowed_roles)
            ),
            bus=self.bus.settings,
            settings=AdapterSettings(
                group_id=self.bus.group_id,
                pool_size=pool_size,
                http_port=0,
                audit_parameters=audit_parameters,
            ),
            verifier=TokenVerifier(identity),
            roles=RolePolicies.load(policy_file),
        )
        self.bus._cleanups.append(transport.close)
        self.bus._cleanups.append(svc.stop)
        await svc.start(http=False)
        self.adapter = svc
        return svc

    async def client(self, token: str | None = None) -> QueryClient:
        return await self.bus.client(token=token, timeout=20.0)

    async def rows(self, sql: str, *args: Any) -> list[Any]:
        """Behind the bus's back, as the superuser (RLS does not apply)."""
        return [tuple(r) for r in await self.admin.fetch(sql, *args)]


@pytest.fixture
async def world(
    bus: Bus, stack: Stack, pg: asyncpg.Connection, unique: UniqueNames, tmp_path: Path
) -> AsyncIterator[World]:
    w = World(unique.ident("id"), bus, stack, pg, tmp_path)
    login = stack.pg.user
    claim = "(current_setting('request.jwt.claims', true)::json->>'tenant')"
    roles = [w.agent, w.reader, w.anon, w.outside]
    setup = [
        *(f"CREATE ROLE {r} NOLOGIN" for r in roles),
        *(f"GRANT {r} TO {login}" for r in roles),
        f"CREATE TABLE {w.items} (id bigserial PRIMARY KEY, "
        f"tenant text NOT NULL DEFAULT {claim}, body text)",
        f"ALTER TABLE {w.items} ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY {w.prefix}_tenant ON {w.items} USING (tenant = {claim}) "
        f"WITH CHECK (tenant = {claim})",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {w.items} TO {w.agent}",
        f"GRANT USAGE ON SEQUENCE {w.items}_id_seq TO {w.agent}",
        f"GRANT SELECT ON {w.items} TO {w.reader}",
        f"GRANT SELECT ON {w.items} TO {w.anon}",
        # The schema's own functions, callable by everyone (PostgreSQL's default):
        # what the parse tree cannot see inside them, the check after the
        # statement must catch.
        f"""CREATE FUNCTION {w.prefix}_become(target text) RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN EXECUTE format('SET ROLE %I', target); RETURN current_user; END $f$""",
        f"""CREATE FUNCTION {w.prefix}_become_local(target text) RETURNS text
            LANGUAGE plpgsql AS $f$
            BEGIN EXECUTE format('SET LOCAL ROLE %I', target); RETURN current_user; END $f$""",
        f"""CREATE FUNCTION {w.prefix}_reset() RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN EXECUTE 'RESET ROLE'; RETURN current_user; END $f$""",
        f"""CREATE FUNCTION {w.prefix}_claims(v text) RETURNS text LANGUAGE plpgsql AS $f$
            BEGIN PERFORM set_config('request.jwt.claims', v, false); RETURN v; END $f$""",
        f"""CREATE FUNCTION {w.prefix}_steal() RETURNS SETOF text LANGUAGE plpgsql AS $f$
            BEGIN
              PERFORM set_config('request.jwt.claims', '{{"tenant": "b"}}', true);
              RETURN QUERY SELECT body FROM {w.items};
            END $f$""",
        f"""CREATE FUNCTION {w.prefix}_write_then_become(target text) RETURNS text
            LANGUAGE plpgsql AS $f$
            BEGIN
              INSERT INTO {w.items} (body) VALUES ('written before the escape');
              EXECUTE format('SET ROLE %I', target);
              RETURN current_user;
            END $f$""",
    ]
    for sql in setup:
        await pg.execute(sql)
    try:
        yield w
    finally:
        await bus.close()  # adapters first: their connections hold the roles
        await pg.execute(f"DROP TABLE IF EXISTS {w.items} CASCADE")
        for fn in ("become", "become_local", "reset", "claims", "steal", "write_then_become"):
            await pg.execute(f"DROP FUNCTION IF EXISTS {w.prefix}_{fn} CASCADE")
        for r in roles:
            await pg.execute(f"DROP OWNED BY {r} CASCADE")
            await pg.execute(f"DROP ROLE IF EXISTS {r}")


async def whoami(client: QueryClient) -> tuple[str, str | None]:
    row = await client.fetchrow(
        "SELECT current_user::text AS who, current_setting('request.jwt.claims', true) AS claims"
    )
    assert row is not None
    claims = row["claims"]
    return row["who"], (json.loads(claims).get("tenant") if claims else None)


# -- row-level security: two tenants, one table -------------------------------------------


async def test_two_tenants_see_and_change_only_their_own_rows(world: World) -> None:
    await world.start()
    a = await world.client(world.token(sub="agent-a", tenant="a"))
    b = await world.client(world.token(sub="agent-b", tenant="b"))
    for n in range(3):
        await a.execute(f"INSERT INTO {world.items} (body) VALUES ($1)", f"a{n}")
    for n in range(2):
        await b.execute(f"INSERT INTO {world.items} (body) VALUES ($1)", f"b{n}")

    assert {r["body"] for r in await a.fetch(f"SELECT body FROM {world.items}")} == {
        "a0",
        "a1",
        "a2",
    }
    assert {r["body"] for r in await b.fetch(f"SELECT body FROM {world.items}")} == {"b0", "b1"}

    # A change of "every row" changes only the caller's own.
    assert (await a.request(f"UPDATE {world.items} SET body = body || '!'")).rowcount == 3
    assert (await b.request(f"DELETE FROM {world.items}")).rowcount == 2
    assert sorted(await world.rows(f"SELECT tenant, body FROM {world.items}")) == [
        ("a", "a0!"),
        ("a", "a1!"),
        ("a", "a2!"),
    ]
    # Writing a row for the other tenant is refused by the policy's WITH CHECK.
    with pytest.raises(InsufficientPrivilegeError):
        await a.execute(f"INSERT INTO {world.items} (tenant, body) VALUES ('b', 'forged')")
    assert await world.rows(f"SELECT count(*) FROM {world.items} WHERE tenant = 'b'") == [(0,)]


async def test_the_statement_runs_as_the_token_role_with_its_claims(world: World) -> None:
    await world.start()
    a = await world.client(world.token(tenant="a"))
    r = await world.client(world.token(world.reader, sub="reporter", tenant="a"))
    assert await whoami(a) == (world.agent, "a")
    assert await whoami(r) == (world.reader, "a")
    assert await a.fetchval("SELECT session_user::text") == world.stack.pg.user


async def test_a_role_without_insert_gets_insufficient_privilege(world: World) -> None:
    await world.start()
    r = await world.client(world.token(world.reader))
    with pytest.raises(InsufficientPrivilegeError) as caught:
        await r.execute(f"INSERT INTO {world.items} (body) VALUES ('no')")
    assert caught.value.sqlstate == "42501"
    assert await world.rows(f"SELECT count(*) FROM {world.items}") == [(0,)]


# -- refused tokens: typed errors, nothing executed ------------------------------------------


def _refused_tokens(w: World) -> list[tuple[str, str | None, type[QueryBusError]]]:
    now = int(time.time())
    return [
        ("wrong key", w.token(secret=OTHER_SECRET), AuthenticationError),
        ("expired", w.token(ttl=-120), TokenExpiredError),
        ("role outside the allowlist", w.token(w.outside), PermissionDeniedError),
        ("no token, no anonymous role", None, AuthenticationError),
        ("another audience", w.token(aud="another-service"), AuthenticationError),
        ("not yet valid", w.token(nbf=now + 3600), AuthenticationError),
        ("not a token", "definitely.not.ajwt", AuthenticationError),
        (
            "unsigned (alg none)",
            jwt.encode({"role": w.agent, "aud": AUDIENCE, "exp": now + 60}, None, algorithm="none"),
            AuthenticationError,
        ),
        ("the login role itself", w.token(w.stack.pg.user), PermissionDeniedError),
    ]


async def test_refused_tokens_get_typed_errors_and_nothing_runs(world: World) -> None:
    await world.start()
    for what, token, expected in _refused_tokens(world):
        client = await world.client(token)
        with pytest.raises(expected) as caught:
            await client.execute(f"INSERT INTO {world.items} (tenant, body) VALUES ('a', $1)", what)
        assert type(caught.value) is expected, what
        assert token is None or token not in str(caught.value), what
    assert await world.rows(f"SELECT count(*) FROM {world.items}") == [(0,)]


async def test_a_request_without_a_token_runs_as_the_anonymous_role(world: World) -> None:
    await world.start(anon=True)
    anonymous = await world.client(None)
    assert (await whoami(anonymous))[0] == world.anon
    with pytest.raises(InsufficientPrivilegeError):
        await anonymous.execute(f"INSERT INTO {world.items} (body) VALUES ('anon')")
    # A bad token is refused, not downgraded to anonymous.
    forged = await world.client(world.token(secret=OTHER_SECRET))
    with pytest.raises(AuthenticationError):
        await forged.fetchval("SELECT 1")


# -- no escape from the role --------------------------------------------------------------


def _escapes(w: World, login: str) -> list[tuple[str, str, type[QueryBusError]]]:
    """(what, SQL, error): every way to leave the token's role we know of."""
    p = w.prefix
    return [
        ("RESET ROLE", "RESET ROLE", RequestRejectedError),
        ("SET ROLE to the login", f"SET ROLE {login}", RequestRejectedError),
        ("SET ROLE to another role", f"SET ROLE {w.reader}", RequestRejectedError),
        ("SET LOCAL ROLE", f"SET LOCAL ROLE {w.reader}", RequestRejectedError),
        ("SET SESSION AUTHORIZATION", f"SET SESSION AUTHORIZATION {login}", RequestRejectedError),
        ("set_config role", f"SELECT set_config('role', '{login}', false)", RequestRejectedError),
        (
            "set_config role, local",
            f"SELECT set_config('role', '{w.reader}', true)",
            RequestRejectedError,
        ),
        (
            "set_config session_authorization",
            f"SELECT set_config('session_authorization', '{login}', false)",
            RequestRejectedError,
        ),
        (
            "set_config claims",
            """SELECT set_config('request.jwt.claims', '{"tenant":"b"}', false)""",
            RequestRejectedError,
        ),
        ("DO block", f"DO $$ BEGIN EXECUTE 'SET ROLE {login}'; END $$", RequestRejectedError),
        ("COMMIT to end the role's transaction", "COMMIT", RequestRejectedError),
        ("ROLLBACK", "ROLLBACK", RequestRejectedError),
        ("SAVEPOINT", "SAVEPOINT s", RequestRejectedError),
        (
            "PREPARE",
            f"PREPARE p AS SELECT set_config('role', '{login}', false)",
            RequestRejectedError,
        ),
        (
            "a function: SET ROLE to the login",
            f"SELECT {p}_become('{login}')",
            PermissionDeniedError,
        ),
        (
            "a function: SET ROLE to another allowed role",
            f"SELECT {p}_become('{w.reader}')",
            PermissionDeniedError,
        ),
        (
            "a function: SET LOCAL ROLE",
            f"SELECT {p}_become_local('{w.reader}')",
            PermissionDeniedError,
        ),
        ("a function: RESET ROLE", f"SELECT {p}_reset()", PermissionDeniedError),
        (
            "a function: other claims",
            f"""SELECT {p}_claims('{{"tenant":"b"}}')""",
            PermissionDeniedError,
        ),
        ("a function: read with other claims", f"SELECT * FROM {p}_steal()", PermissionDeniedError),
        (
            "a function: write, then leave the role",
            f"SELECT {p}_write_then_become('{login}')",
            PermissionDeniedError,
        ),
    ]


async def test_no_request_escapes_its_role(world: World) -> None:
    """After each attempt, the next request on the same connection (pool of
    one) still runs as its own token's role with its own claims, and nothing
    the attempt wrote or read survives."""
    await world.start(pool_size=1)
    login = world.stack.pg.user
    b = await world.client(world.token(sub="agent-b", tenant="b"))
    await b.execute(f"INSERT INTO {world.items} (body) VALUES ('b secret')")
    a = await world.client(world.token(sub="agent-a", tenant="a"))
    reader = await world.client(world.token(world.reader, sub="reporter", tenant="a"))
    for what, sql, expected in _escapes(world, login):
        with pytest.raises(expected) as caught:
            await a.fetch(sql)
        assert type(caught.value) is expected, (what, caught.value)
        assert "b secret" not in str(caught.value), what
        assert await whoami(a) == (world.agent, "a"), what
        assert await whoami(reader) == (world.reader, "a"), what
        assert await whoami(b) == (world.agent, "b"), what
    # Nothing an attempt wrote was committed; b's row is still b's alone.
    assert await world.rows(f"SELECT tenant, body FROM {world.items}") == [("b", "b secret")]


# -- per-role limits ------------------------------------------------------------------------


async def test_a_flood_from_one_subject_is_throttled_while_another_is_served(
    world: World,
) -> None:
    await world.start(pool_size=2, policy="[defaults]\nrate = 1.0\nburst = 3\n")
    flood = await world.client(world.token(sub="flooder"))
    calm = await world.client(world.token(sub="calm"))
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(flood.fetchval("SELECT 1") for _ in range(40)), return_exceptions=True
    )
    elapsed = time.monotonic() - started
    limited = [o for o in outcomes if isinstance(o, RateLimitedError)]
    served = [o for o in outcomes if o == 1]
    assert len(limited) + len(served) == 40, outcomes
    # The bucket holds 3 and refills one a second: however slow this machine was.
    assert 3 <= len(served) <= 3 + int(elapsed) + 1
    assert all(0 < e.retry_after <= 1.0 for e in limited)
    # The other subject has its own bucket: all of its burst is served.
    assert await asyncio.gather(*(calm.fetchval("SELECT 2") for _ in range(3))) == [2, 2, 2]


async def test_role_limits_rows_tables_and_operations(world: World) -> None:
    policy = f"""
[roles.{world.agent}]
max_rows = 2
tables = ["{world.items}"]
[roles.{world.reader}]
operations = ["SELECT"]
"""
    await world.start(policy=policy)
    a = await world.client(world.token())
    await a.execute(f"INSERT INTO {world.items} (body) SELECT 'x' FROM generate_series(1, 2)")
    assert len(await a.fetch(f"SELECT * FROM {world.items}")) == 2
    await world.admin.execute(f"INSERT INTO {world.items} (tenant, body) VALUES ('a', 'third')")
    with pytest.raises(PermissionDeniedError, match="more than 2 rows"):
        await a.fetch(f"SELECT * FROM {world.items}")
    # A write whose RETURNING rows exceed the limit is rolled back, not half done.
    with pytest.raises(PermissionDeniedError):
        await a.fetch(f"UPDATE {world.items} SET body = 'changed' RETURNING id")
    assert await world.rows(f"SELECT count(*) FROM {world.items} WHERE body = 'changed'") == [(0,)]
    with pytest.raises(PermissionDeniedError, match="pg_class"):
        await a.fetch("SELECT relname FROM pg_class LIMIT 1")
    r = await world.client(world.token(world.reader))
    with pytest.raises(PermissionDeniedError):
        await r.execute(f"DELETE FROM {world.items}")


# -- idempotency keys are per caller ---------------------------------------------------------


async def test_an_idempotency_key_never_answers_another_caller(world: World) -> None:
    await world.start()
    a = await world.client(world.token(sub="agent-a", tenant="a"))
    b = await world.client(world.token(sub="agent-b", tenant="b"))
    sql = f"INSERT INTO {world.items} (body) VALUES ('keyed') RETURNING tenant"
    key = uuid.uuid4().hex
    assert (await a.fetch(sql, idempotency_key=key))[0]["tenant"] == "a"
    assert (await b.fetch(sql, idempotency_key=key))[0]["tenant"] == "b"
    assert (await a.fetch(sql, idempotency_key=key))[0]["tenant"] == "a"  # a replay
    assert sorted(await world.rows(f"SELECT tenant FROM {world.items}")) == [("a",), ("b",)]


# -- keys rotate without a restart -----------------------------------------------------------


def _jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


async def test_keys_rotate_through_the_jwks_file_without_a_restart(world: World) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    jwks = world.tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(old, "old")]}))
    await world.start(jwks=jwks)

    def signed(key: Ed25519PrivateKey, kid: str) -> str:
        now = int(time.time())
        claims = {"sub": kid, "role": world.agent, "aud": AUDIENCE, "exp": now + 300, "tenant": "a"}
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})

    with_old = await world.client(signed(old, "old"))
    with_new = await world.client(signed(new, "new"))
    assert await with_old.fetchval("SELECT 1") == 1
    with pytest.raises(AuthenticationError):
        await with_new.fetchval("SELECT 1")

    jwks.write_text(json.dumps({"keys": [_jwk(old, "old"), _jwk(new, "new")]}))
    assert await eventually(lambda: _served(with_new), bool, within=10.0)
    jwks.write_text(json.dumps({"keys": [_jwk(new, "new")]}))
    assert await eventually(lambda: _refused(with_old), bool, within=10.0)
    assert await with_new.fetchval("SELECT 1") == 1


async def _served(client: QueryClient) -> bool:
    try:
        return await client.fetchval("SELECT 1") == 1
    except AuthenticationError:
        return False


async def _refused(client: QueryClient) -> bool:
    try:
        await client.fetchval("SELECT 1")
    except AuthenticationError:
        return True
    return False


# -- the audit topic ------------------------------------------------------------------------


async def test_every_request_leaves_an_audit_record_without_values(world: World) -> None:
    await world.start()
    secret_value = f"secret-value-{uuid.uuid4().hex}"
    token = world.token(sub="audited", tenant="a")
    a = await world.client(token)
    await a.execute(f"INSERT INTO {world.items} (body) VALUES ($1)", secret_value)
    with pytest.raises(InsufficientPrivilegeError):
        await a.execute(f"INSERT INTO {world.items} (tenant, body) VALUES ('b', $1)", secret_value)
    forged = await world.client(world.token(sub="forger", secret=OTHER_SECRET))
    with pytest.raises(AuthenticationError):
        await forged.fetchval("SELECT $1::text", secret_value)

    transport = await world.bus.transport()
    reader = transport.partition_reader(world.bus.settings.topics.audit, [0], start_at="beginning")
    await reader.start()
    try:
        records = await collect(reader, 3, timeout=20.0)
    finally:
        await reader.stop()
    docs = [json.loads(r.value or b"{}") for r in records]
    ok, denied, unauthenticated = docs
    assert (ok["subject"], ok["role"], ok["outcome"], ok["rowcount"]) == (
        "audited",
        world.agent,
        "ok",
        1,
    )
    assert ok["fingerprint"]
    assert ok["operation"] == "INSERT"
    assert ok["target"] == "postgres"
    assert (denied["outcome"], denied["sqlstate"]) == ("query", "42501")
    assert unauthenticated["outcome"] == "unauthenticated"
    for record in records:
        raw = (record.value or b"") + b"".join(v for _, v in record.headers)
        assert secret_value.encode() not in raw
        assert token.encode() not in raw
        assert SECRET.encode() not in raw
        assert "params" not in json.loads(record.value or b"{}")
