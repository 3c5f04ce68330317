"""The caller's token on the client side: TokenSource (caching, refresh, one
call at a time) and QueryClient sending it, and resending once on token_expired.

The bus is the in-memory one; the "adapter" is a tiny responder that records
each request's token header and answers or refuses it, so these tests do not
depend on how the adapter verifies tokens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from tests.helpers import bounded, wait_for

from querybus.client import QueryClient
from querybus.client.credentials import TokenSource, token_expiry
from querybus.config import BusSettings
from querybus.errors import AuthenticationError, InterfaceError, TokenExpiredError
from querybus.protocol import (
    Column,
    ErrorInfo,
    Headers,
    QueryFailure,
    QueryRequest,
    QueryResult,
    decode_request,
    encode,
)
from querybus.transport import TopicSpec, Transport, connect

NOW = 1_700_000_000.0
#: 2100-01-01: tokens used against the real clock.
FAR = 4_102_444_800.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(sub: str, exp: float | None = FAR, **claims: Any) -> str:
    """A JWT-shaped token (the client never verifies; only its exp is read)."""
    payload = {"sub": sub, **claims}
    if exp is not None:
        payload["exp"] = exp
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps(payload).encode())}.{b64(b'signature-' + sub.encode())}"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Provider:
    """Hands out fake_jwt("t1"), fake_jwt("t2"), … and counts the calls."""

    def __init__(self, ttl: float | None = None, clock: Clock | None = None) -> None:
        self.calls = 0
        self.ttl = ttl
        self.clock = clock

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is None:  # against the real clock: valid until 2100
            return fake_jwt(f"t{self.calls}")
        exp = None if self.ttl is None else self.clock() + self.ttl
        return fake_jwt(f"t{self.calls}", exp)


# -- token_expiry ------------------------------------------------------------------------


def test_token_expiry_reads_exp_without_verifying() -> None:
    assert token_expiry(fake_jwt("a", NOW + 5)) == NOW + 5
    assert token_expiry(fake_jwt("a", exp=None)) is None
    head = b64(b'{"alg":"HS256"}')
    for exp in (b"true", b'"soon"', b"1e999"):
        body = b64(b'{"exp":' + exp + b"}")
        assert token_expiry(f"{head}.{body}.sig") is None
    for garbage in ("", "opaque-token", "a.b", "a.!!!.c", f"a.{b64(b'[1]')}.c", "a.b.c.d"):
        assert token_expiry(garbage) is None


# -- TokenSource -------------------------------------------------------------------------------


def test_token_arguments_are_checked() -> None:
    with pytest.raises(InterfaceError, match="not both"):
        TokenSource(token="t", provider=lambda: "t")
    with pytest.raises(InterfaceError, match="not both"):
        TokenSource()
    with pytest.raises(InterfaceError, match="non-empty"):
        TokenSource(token="")
    with pytest.raises(InterfaceError, match="callable"):
        TokenSource(provider="not callable")  # type: ignore[arg-type]
    with pytest.raises(InterfaceError, match="not both"):
        QueryClient("memory://x", token="t", token_provider=lambda: "t")


async def test_fixed_token_is_sent_as_is() -> None:
    source = TokenSource(token="opaque")
    assert not source.can_refresh
    assert await source.current() == "opaque"
    assert await source.current() == "opaque"


async def test_provided_token_is_kept_until_30_s_before_exp() -> None:
    clock = Clock()
    provider = Provider(ttl=600, clock=clock)
    source = TokenSource(provider=provider, clock=clock)
    first = await source.current()
    clock.now = NOW + 569  # 31 s before exp
    assert await source.current() == first
    assert provider.calls == 1
    clock.now = NOW + 571  # 29 s before exp
    second = await source.current()
    assert second != first
    assert provider.calls == 2


async def test_token_without_exp_is_asked_for_every_60_s() -> None:
    clock = Clock()
    provider = Provider(ttl=None, clock=clock)
    source = TokenSource(provider=provider, clock=clock)
    await source.current()
    clock.now += 59
    await source.current()
    assert provider.calls == 1
    clock.now += 1
    await source.current()
    assert provider.calls == 2


async def test_short_lived_token_is_refreshed_half_way_not_every_time() -> None:
    clock = Clock()
    provider = Provider(ttl=20, clock=clock)
    source = TokenSource(provider=provider, clock=clock)
    for _ in range(5):
        await source.current()
    assert provider.calls == 1
    clock.now += 10
    await source.current()
    assert provider.calls == 2


async def test_concurrent_requests_share_one_provider_call() -> None:
    release = asyncio.Event()
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return fake_jwt(f"t{calls}")

    source = TokenSource(provider=provider)
    waiting = [asyncio.create_task(source.current()) for _ in range(50)]
    await wait_for(lambda: calls == 1)
    release.set()
    tokens = await asyncio.gather(*waiting)
    assert set(tokens) == {fake_jwt("t1")}
    assert calls == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call() -> None:
    release = asyncio.Event()

    async def provider() -> str:
        await release.wait()
        return fake_jwt("t1")

    source = TokenSource(provider=provider)
    impatient = asyncio.create_task(source.current())
    patient = asyncio.create_task(source.current())
    await wait_for(lambda: source._inflight is not None)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    release.set()
    assert await patient == fake_jwt("t1")


async def test_refresh_after_token_expired_asks_once_for_many_requests() -> None:
    provider = Provider()
    source = TokenSource(provider=provider)
    stale = await source.current()
    fresh = await asyncio.gather(*[source.refresh(stale) for _ in range(10)])
    assert set(fresh) == {fake_jwt("t2")}
    assert provider.calls == 2
    # Another request that still holds the stale token gets the new one, no new call.
    assert await source.refresh(stale) == fake_jwt("t2")
    assert provider.calls == 2


async def test_provider_failures(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outcomes: list[Any] = [RuntimeError("password=hunter2"), fake_jwt("t1", NOW + 100)]

    def provider() -> Any:
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    source = TokenSource(provider=provider, clock=clock)
    # No token yet: the request fails, with the class of the error only.
    with pytest.raises(AuthenticationError, match=r"failed \(RuntimeError\)") as info:
        await source.current()
    assert "hunter2" not in str(info.value)
    assert await source.current() == fake_jwt("t1", NOW + 100)
    # Due for a refresh but still valid: the held token is used, with a warning.
    clock.now = NOW + 80
    outcomes.append(OSError("down"))
    with caplog.at_level(logging.WARNING, logger="querybus.client"):
        assert await source.current() == fake_jwt("t1", NOW + 100)
    assert "using the current token" in caplog.text
    assert fake_jwt("t1", NOW + 100) not in caplog.text
    # Expired: the failure is the request's.
    clock.now = NOW + 100
    outcomes.append(OSError("down"))
    with pytest.raises(AuthenticationError):
        await source.current()
    outcomes.append(None)
    with pytest.raises(InterfaceError, match="returned NoneType"):
        await source.current()


# -- QueryClient on the in-memory bus ------------------------------------------------------


Refusal = Callable[[bytes | None], str | None]


class Responder:
    """Plays the adapter: records (request, token header, key) and replies
    with the token's text as the one value, or with the error code ``refuse``
    returns for that token."""

    def __init__(self, bus: BusSettings, refuse: Refusal = lambda _: None) -> None:
        self.bus = bus
        self.refuse = refuse
        self.seen: list[tuple[QueryRequest, bytes | None, bytes | None]] = []
        self.transport: Transport = connect(bus.bootstrap_servers)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Responder:
        s = self.bus
        await self.transport.create_topics(
            [
                TopicSpec(s.topics.request, partitions=s.request_partitions),
                TopicSpec(s.topics.response, partitions=s.response_partitions),
                TopicSpec(s.topics.error, partitions=1),
            ]
        )
        self.reader = self.transport.partition_reader(s.topics.request, start_at="beginning")
        await self.reader.start()
        self.producer = self.transport.producer()
        await self.producer.start()
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        await self.reader.stop()
        await self.producer.stop()
        await self.transport.close()

    async def _serve(self) -> None:
        while True:
            for record in await self.reader.getmany(timeout=1.0):
                assert record.value is not None
                request = decode_request(record.value)
                token = record.header(Headers.AUTHORIZATION)
                self.seen.append((request, token, record.key))
                code = self.refuse(token)
                reply: QueryResult | QueryFailure
                if code:
                    reply = QueryFailure(
                        id=request.id, error=ErrorInfo(code=code, message=f"refused: {code}")
                    )
                else:
                    value = token.decode() if token is not None else None
                    reply = QueryResult(
                        id=request.id,
                        command="SELECT 1",
                        columns=[Column("token", "text")],
                        rows=[[value]],
                        rowcount=1,
                    )
                await self.producer.send(
                    request.reply_to.topic,
                    encode(reply),
                    partition=request.reply_to.partition,
                    headers=[
                        (Headers.CORRELATION_ID, request.id.encode()),
                        (Headers.CLIENT_ID, request.client.encode()),
                    ],
                )


def new_bus() -> BusSettings:
    return BusSettings(bootstrap_servers=f"memory://token-{uuid.uuid4().hex[:8]}")


@bounded(20)
async def test_every_request_carries_the_token_header() -> None:
    bus = new_bus()
    token = fake_jwt("static")
    async with (
        Responder(bus) as adapter,
        QueryClient(bus, token=token, timeout=10) as client,
    ):
        assert await client.fetchval("SELECT 1") == token
        assert await client.fetchval("SELECT 1") == token
        assert token not in repr(client)
        async with QueryClient(bus, timeout=10) as anonymous:
            assert await anonymous.fetchval("SELECT 1") is None
    assert [t for _, t, _ in adapter.seen] == [token.encode(), token.encode(), None]


@bounded(20)
async def test_token_expired_refreshes_and_resends_once() -> None:
    bus = new_bus()
    provider = Provider()
    first = fake_jwt("t1").encode()

    def refuse(token: bytes | None) -> str | None:
        return "token_expired" if token == first else None

    async with (
        Responder(bus, refuse) as adapter,
        QueryClient(bus, token_provider=provider, timeout=10) as client,
    ):
        result = await client.request("SELECT 1", idempotency_key="once")
        assert result.rows[0][0] == fake_jwt("t2")
        # Later requests use the new token straight away.
        assert await client.fetchval("SELECT 1") == fake_jwt("t2")
    assert provider.calls == 2
    (req1, tok1, key1), (req2, tok2, key2), _ = adapter.seen
    assert (tok1, tok2) == (first, fake_jwt("t2").encode())
    assert req1.id != req2.id
    assert result.correlation_id == req2.id
    assert key1 == key2 == b"once"
    assert req1.idem == req2.idem == "once"
    assert req1.deadline == req2.deadline


@bounded(20)
async def test_token_expired_twice_is_raised() -> None:
    bus = new_bus()
    provider = Provider()
    async with (
        Responder(bus, lambda _: "token_expired") as adapter,
        QueryClient(bus, token_provider=provider, timeout=10) as client,
    ):
        with pytest.raises(TokenExpiredError) as info:
            await client.fetch("SELECT 1")
    assert len(adapter.seen) == 2
    assert provider.calls == 2
    for n in (1, 2):
        assert fake_jwt(f"t{n}") not in f"{info.value} {info.value!r}"


@bounded(20)
async def test_no_resend_without_a_provider_or_for_other_refusals() -> None:
    bus = new_bus()
    async with (
        Responder(bus, lambda _: "token_expired") as adapter,
        QueryClient(bus, token=fake_jwt("static"), timeout=10) as client,
    ):
        with pytest.raises(TokenExpiredError):
            await client.fetch("SELECT 1")
    assert len(adapter.seen) == 1

    bus = new_bus()
    provider = Provider()
    async with (
        Responder(bus, lambda _: "unauthenticated") as adapter,
        QueryClient(bus, token_provider=provider, timeout=10) as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.fetch("SELECT 1")
        assert type(info.value) is AuthenticationError
    assert len(adapter.seen) == 1
    assert provider.calls == 1


@bounded(20)
async def test_many_requests_with_an_expired_token_refresh_it_once() -> None:
    bus = new_bus()
    provider = Provider()
    first = fake_jwt("t1").encode()
    async with (
        Responder(bus, lambda t: "token_expired" if t == first else None) as adapter,
        QueryClient(bus, token_provider=provider, timeout=10) as client,
    ):
        # 20 at once: they share the first call (t1), all are refused, and
        # share the second (t2).
        values = await asyncio.gather(*[client.fetchval("SELECT 1") for _ in range(20)])
    assert set(values) == {fake_jwt("t2")}
    assert provider.calls == 2
    tokens = [t or b"" for _, t, _ in adapter.seen]
    assert sorted(tokens) == [first] * 20 + [fake_jwt("t2").encode()] * 20


@bounded(20)
async def test_async_provider() -> None:
    bus = new_bus()

    async def provider() -> str:
        return fake_jwt("async")

    async with Responder(bus), QueryClient(bus, token_provider=provider, timeout=10) as client:
        assert await client.fetchval("SELECT 1") == fake_jwt("async")


def test_sync_client_and_dbapi_pass_the_token_through() -> None:
    from querybus import dbapi
    from querybus.client.sync import SyncQueryClient

    token = fake_jwt("sync")
    with SyncQueryClient(new_bus(), token=token, timeout=10) as db:
        assert token not in repr(db)
        assert db.client._tokens is not None
        assert db.client._tokens._token == token
    conn = dbapi.connect(new_bus(), token_provider=lambda: token)
    try:
        tokens = conn._require().client._tokens
        assert tokens is not None
        assert tokens.can_refresh
    finally:
        conn.close()


def test_reprs_never_show_the_token() -> None:
    token = fake_jwt("secret-subject")
    client = QueryClient("memory://repr", token=token)
    assert token not in repr(client)
    assert token not in repr(vars(client).get("_tokens"))
    provided = TokenSource(provider=lambda: token)
    assert token not in repr(provided)


# -- querybus query --token ------------------------------------------------------------------


class _FakeClient:
    """Stands in for QueryClient in the CLI: records the token it was given."""

    tokens: list[str | None] = []

    def __init__(self, *args: Any, token: str | None = None, **kwargs: Any) -> None:
        _FakeClient.tokens.append(token)

    async def __aenter__(self) -> _FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        from querybus.client import Result

        return Result(rows=[], command="SELECT 0")


@pytest.mark.parametrize(
    ("args", "env", "sent"),
    [
        (["--token", "from-flag"], {"QUERYBUS_TOKEN": "from-env"}, "from-flag"),
        ([], {"QUERYBUS_TOKEN": "from-env"}, "from-env"),
        ([], {"QUERYBUS_TOKEN": ""}, None),
    ],
)
def test_cli_query_token_flag_wins_over_env(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], sent: str | None
) -> None:
    from typer.testing import CliRunner

    import querybus.client
    from querybus.cli.main import app

    monkeypatch.setattr(querybus.client, "QueryClient", _FakeClient)
    _FakeClient.tokens = []
    env = {**env, "KAFKA_BOOTSTRAP_SERVERS": "memory://cli-token", "QUERYBUS_REGISTRY": ""}
    result = CliRunner().invoke(app, ["query", "SELECT 0", *args], env=env)
    assert result.exit_code == 0, result.output
    assert _FakeClient.tokens == [sent]
    assert "from-" not in result.output
