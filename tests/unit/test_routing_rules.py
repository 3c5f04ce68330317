"""Routing rules, strategies, lag arithmetic and settings — pure, no database."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from querybus.database.replication import format_lsn, parse_lsn
from querybus.errors import ConfigurationError, NoEligibleTargetError, RequestRejectedError
from querybus.protocol.messages import OperationType, QueryRequest, ReplyAddress, RoutePreference
from querybus.routing.classify import Classifier
from querybus.routing.lag import LagSample, LagTracker
from querybus.routing.reasons import Reason
from querybus.routing.router import Router
from querybus.routing.settings import RoutingSettings
from querybus.routing.strategies import (
    LeastOutstanding,
    RoundRobin,
    StrategyName,
    WeightedRandom,
    make_strategy,
)
from querybus.routing.targets import ReplicaConfig, Target

CLASSIFY = Classifier().classify
READ = "SELECT * FROM accounts WHERE id = $1"


def request(sql: str = READ, **kw: object) -> QueryRequest:
    return QueryRequest(
        id="r",
        client="c",
        op=OperationType.SELECT,
        sql=sql,
        reply_to=ReplyAddress("t", 0),
        deadline=time.time() + 10,
        **kw,  # type: ignore[arg-type]
    )


def replica(
    name: str,
    *,
    lag: float = 0.0,
    lag_bytes: int = 0,
    replayed: int = 100,
    group: str = "default",
    weight: float = 1.0,
    age: float = 0.0,
) -> Target:
    t = Target(name, f"postgresql://h/{name}", weight=weight, group=group)
    t.sample = LagSample(replayed, lag_bytes, lag, True, time.monotonic() - age)
    t.replayed_lsn = replayed
    return t


def router(*replicas: Target, **settings: object) -> Router:
    return Router(
        Target("primary", "postgresql://p", is_primary=True), replicas, RoutingSettings(**settings)
    )  # type: ignore[arg-type]


def test_write_goes_to_primary_with_its_reason() -> None:
    plan = router(replica("a")).plan(request("DELETE FROM t"), CLASSIFY("DELETE FROM t"))
    assert plan.primary_only
    assert plan.primary_reason is Reason.WRITE


def test_read_goes_to_fresh_replica() -> None:
    a = replica("a")
    plan = router(a).plan(request(), CLASSIFY(READ))
    assert plan.replicas == [a]
    assert plan.reason is Reason.READ


def test_lagging_replica_gets_no_reads() -> None:
    plan = router(replica("a", lag=5.0), max_replica_lag=1.0).plan(request(), CLASSIFY(READ))
    assert plan.primary_only
    assert plan.primary_reason is Reason.REPLICA_LAG


def test_lag_in_bytes_limit() -> None:
    r = router(replica("a", lag_bytes=10_000_000), max_replica_lag_bytes=1_000_000)
    assert r.plan(request(), CLASSIFY(READ)).primary_reason is Reason.REPLICA_LAG


def test_banned_or_stale_replica_gets_no_reads() -> None:
    banned = replica("a")
    banned.mark_failed(OSError("down"), base=10, maximum=10)
    plan = router(banned).plan(request(), CLASSIFY(READ))
    assert plan.primary_only
    assert plan.primary_reason is Reason.NO_HEALTHY_REPLICA
    stale = replica("b", age=60)
    assert router(stale).plan(request(), CLASSIFY(READ)).primary_only
    banned.mark_ok()
    assert router(banned).plan(request(), CLASSIFY(READ)).replicas == [banned]


def test_no_fallback_raises() -> None:
    with pytest.raises(NoEligibleTargetError):
        router(fallback_to_primary=False).plan(request(), CLASSIFY(READ))


def test_per_request_preferences() -> None:
    lagging = replica("a", lag=30.0)
    r = router(lagging, max_replica_lag=1.0)
    assert r.plan(request(route=RoutePreference.PRIMARY), CLASSIFY(READ)).primary_reason is (
        Reason.PREFERENCE_PRIMARY
    )
    # route=replica waives the configured limit…
    plan = r.plan(request(route=RoutePreference.REPLICA), CLASSIFY(READ))
    assert plan.replicas == [lagging]
    assert plan.reason is Reason.PREFERENCE_REPLICA
    # …but not the caller's own, and never falls back silently.
    with pytest.raises(NoEligibleTargetError):
        r.plan(request(route=RoutePreference.REPLICA, max_staleness=1.0), CLASSIFY(READ))
    # max_staleness tightens the configured limit.
    fresh = replica("b", lag=0.5)
    r2 = router(fresh, max_replica_lag=1.0)
    assert r2.plan(request(max_staleness=0.1), CLASSIFY(READ)).primary_only
    assert r2.plan(request(max_staleness=2.0), CLASSIFY(READ)).replicas == [fresh]
    # A write stays on the primary whatever the caller asks.
    w = "UPDATE t SET a = 1"
    assert r.plan(request(w, route=RoutePreference.REPLICA), CLASSIFY(w)).primary_only


def test_read_your_writes_split() -> None:
    ahead, behind = (
        replica("a", replayed=parse_lsn("0/200")),
        replica("b", replayed=parse_lsn("0/100")),
    )
    plan = router(ahead, behind).plan(request(min_lsn="0/180"), CLASSIFY(READ))
    assert plan.replicas == [ahead]
    assert plan.pending == [behind]
    assert plan.reason is Reason.READ_YOUR_WRITES
    assert plan.primary_reason is Reason.RYW_PRIMARY
    with pytest.raises(RequestRejectedError):
        router(ahead).plan(request(min_lsn="nonsense"), CLASSIFY(READ))


def test_learned_primary_only() -> None:
    r = router(replica("a"))
    fp = CLASSIFY(READ).fingerprint
    r.learn_primary_only(fp)
    assert r.plan(request(), CLASSIFY(READ)).primary_reason is Reason.LEARNED_PRIMARY


def test_learned_set_is_bounded() -> None:
    r = router(learned_max=3)
    for i in range(10):
        r.learn_primary_only(f"fp{i}")
    assert not r.is_learned("fp0")
    assert r.is_learned("fp9")


def test_complex_reads_use_their_pool() -> None:
    heavy, light = replica("heavy", group="analytics"), replica("light")
    r = router(heavy, light, complex_pool="analytics")
    complex_sql = (
        "WITH r AS (SELECT a, sum(b) FROM t GROUP BY 1) SELECT *, rank() OVER (ORDER BY a) "
        "FROM r JOIN u ON true JOIN v ON true WHERE a IN (SELECT 1) ORDER BY 1, 2"
    )
    plan = r.plan(request(complex_sql), CLASSIFY(complex_sql))
    assert plan.replicas[0] is heavy
    assert plan.reason is Reason.COMPLEX_READ
    assert r.plan(request(), CLASSIFY(READ)).replicas[0] is light


def test_round_robin_rotates() -> None:
    a, b, c = replica("a"), replica("b"), replica("c")
    rr = RoundRobin()
    firsts = [rr.order([a, b, c])[0].name for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_least_outstanding_prefers_idle() -> None:
    a, b = replica("a"), replica("b")
    a.outstanding = 5
    assert LeastOutstanding().order([a, b])[0] is b
    a.outstanding = 0
    firsts = Counter(LeastOutstanding().order([a, b])[0].name for _ in range(2))
    assert sum(firsts.values()) == 2


def test_weighted_random_follows_weights() -> None:
    a, b = replica("a", weight=3), replica("b", weight=1)
    wr = WeightedRandom(random.Random(7))
    counts = Counter(wr.order([a, b])[0].name for _ in range(4000))
    assert 0.7 < counts["a"] / 4000 < 0.8
    assert len(wr.order([a, b])) == 2


def test_make_strategy() -> None:
    for name in StrategyName:
        assert make_strategy(name.value) is not None
    with pytest.raises(ConfigurationError):
        make_strategy("fastest")


def test_lsn_roundtrip() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn("0/10") < parse_lsn("1/0")


def test_lag_tracker_seconds_and_bytes() -> None:
    t = LagTracker()
    t.primary_sample(100, at=10.0)
    t.primary_sample(100, at=11.0)  # idle primary: no new entry
    t.primary_sample(200, at=12.0)
    t.primary_sample(300, at=13.0)
    assert t.lag(300, at=20.0) == (0, 0.0)  # caught up: no lag however idle
    assert t.lag(150, at=14.0) == (150, 2.0)  # primary passed 150 by t=12
    assert t.lag(50, at=14.0) == (250, 4.0)  # older than the history: at least that


def test_ban_doubles_and_caps() -> None:
    t = replica("a")
    t.mark_failed(OSError(), base=1.0, maximum=3.0)
    first = t.banned_until - time.monotonic()
    t.mark_failed(OSError(), base=1.0, maximum=3.0)
    t.mark_failed(OSError(), base=1.0, maximum=3.0)
    assert 0.5 < first <= 1.0
    assert 2.5 < t.banned_until - time.monotonic() <= 3.0
    assert t.banned()
    t.mark_ok()
    assert not t.banned()


def test_settings_from_env() -> None:
    s = RoutingSettings.from_env(
        {
            "QUERYBUS_REPLICA_DSNS": "postgresql://a:1/x, postgresql://b:2/x",
            "QUERYBUS_REPLICA_WEIGHTS": "2,1",
            "QUERYBUS_REPLICA_GROUPS": "default,analytics",
            "QUERYBUS_MAX_REPLICA_LAG": "0.5",
            "QUERYBUS_ROUTING_STRATEGY": "weighted_random",
            "QUERYBUS_RYW_WAIT": "0.2",
            "QUERYBUS_ROUTING_FALLBACK": "fail",
            "QUERYBUS_COMPLEX_POOL": "analytics",
        }
    )
    assert s.replicas == (
        ReplicaConfig("postgresql://a:1/x", weight=2.0),
        ReplicaConfig("postgresql://b:2/x", weight=1.0, group="analytics"),
    )
    assert s.max_replica_lag == 0.5
    assert s.ryw_wait == 0.2
    assert s.strategy is StrategyName.WEIGHTED_RANDOM
    assert not s.fallback_to_primary
    assert s.complex_pool == "analytics"
    assert RoutingSettings.from_env({}) == RoutingSettings()
    for bad in (
        {"QUERYBUS_MAX_REPLICA_LAG": "x"},
        {"QUERYBUS_ROUTING_STRATEGY": "x"},
        {"QUERYBUS_ROUTING_FALLBACK": "maybe"},
    ):
        with pytest.raises(ConfigurationError):
            RoutingSettings.from_env(bad)


def test_decision_record_encodes() -> None:
    import msgspec

    from querybus.routing.decisions import RoutingDecision, encode_decision

    d = RoutingDecision(
        request_id="r",
        fingerprint="f",
        target="primary",
        reason="write",
        classified="primary",
        complexity_score=0,
        complexity_class="simple",
        timestamp=1.0,
    )
    back = msgspec.json.decode(encode_decision(d), type=RoutingDecision)
    assert back == d
    # Every field is written, defaults included, so plain-JSON consumers of the
    # decisions topic never have to know which defaults to assume.
    raw = msgspec.json.decode(encode_decision(d))
    assert raw["lag_seconds"] is None
    assert raw["ok"] is True
    assert set(raw) == set(RoutingDecision.__struct_fields__)


def test_settings_never_show_a_password() -> None:
    from querybus.config import PostgresSettings
    from querybus.routing.settings import RoutingSettings

    routing = RoutingSettings.from_env({"QUERYBUS_REPLICA_DSNS": "postgresql://u:s3cret@h:5433/db"})
    assert "s3cret" not in repr(routing)
    assert "s3cret" not in repr(PostgresSettings(password="s3cret"))


def test_ban_backoff_survives_thousands_of_failures() -> None:
    import time

    from querybus.routing.targets import Target

    target = Target("r", "postgresql://h:5432/db")
    for _ in range(5000):  # a replica down for minutes, sampled every 0.1 s
        target.mark_failed(OSError("down"), base=0.5, maximum=10.0)
    assert target.failures == 5000
    assert 9.0 < target.banned_until - time.monotonic() <= 10.0
