"""The routing rules: from a classification, a request and the targets' state
to a plan. Pure — no I/O — so every rule is unit-tested without a database.

The executor (:mod:`querybus.routing.executor`) carries the plan out: it
tries the planned replicas in order, waits for read-your-writes when the plan
says so, and ends on the primary when the plan allows it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from querybus.database.replication import parse_lsn
from querybus.errors import NoEligibleTargetError
from querybus.protocol.messages import QueryRequest, RoutePreference
from querybus.routing.classify import Classification
from querybus.routing.reasons import Reason
from querybus.routing.settings import RoutingSettings
from querybus.routing.strategies import Strategy, make_strategy
from querybus.routing.targets import Target
from querybus.sql.complexity import ComplexityClass

__all__ = ["Plan", "Router"]


@dataclass(slots=True)
class Plan:
    """Where to try a statement, in order.

    Attributes:
        reason: why (for a read on a replica; the primary's reason is ``primary_reason``).
        replicas: replicas ready to serve it, best first.
        pending: replicas that have not yet replayed ``min_lsn`` (read-your-writes):
            the first one is waited for, up to the budget.
        primary: whether the primary is tried after the replicas (or alone).
        primary_reason: the reason recorded when the primary serves it.
        min_lsn: the caller's LSN, parsed.
    """

    reason: Reason
    replicas: list[Target] = field(default_factory=list)
    pending: list[Target] = field(default_factory=list)
    primary: bool = True
    primary_reason: Reason = Reason.WRITE
    min_lsn: int | None = None

    @property
    def primary_only(self) -> bool:
        """No replica is to be tried."""
        return not self.replicas and not self.pending


class Router:
    """Applies the routing rules.

    Args:
        primary: the primary target.
        replicas: the replica targets. The executor replaces the list (never
            mutates it) when replicas are added or removed; :meth:`plan` reads
            it once.
        settings: routing settings.
        strategy: balancing strategy (default: the one ``settings`` names).
    """

    def __init__(
        self,
        primary: Target,
        replicas: Sequence[Target],
        settings: RoutingSettings,
        strategy: Strategy | None = None,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.settings = settings
        self.strategy = strategy or make_strategy(settings.strategy)
        # Fingerprints a replica refused as writes (SQLSTATE 25006); bounded, oldest out.
        self._learned: OrderedDict[str, None] = OrderedDict()

    # -- self-healing -------------------------------------------------------

    def learn_primary_only(self, fingerprint: str) -> None:
        """Remember that ``fingerprint`` must run on the primary."""
        if not fingerprint:
            return
        self._learned[fingerprint] = None
        self._learned.move_to_end(fingerprint)
        while len(self._learned) > self.settings.learned_max:
            self._learned.popitem(last=False)

    def is_learned(self, fingerprint: str) -> bool:
        """Whether a replica once refused ``fingerprint`` as a write."""
        return fingerprint in self._learned

    # -- eligibility ----------------------------------------------------------

    def _fresh(self, target: Target, now: float) -> bool:
        sample = target.sample
        return (
            not target.banned(now)
            and sample is not None
            and sample.in_recovery
            and now - sample.sampled_at <= self.settings.effective_sample_max_age
        )

    def _within_lag(self, target: Target, max_seconds: float, max_bytes: int | None) -> bool:
        sample = target.sample
        assert sample is not None  # checked by _fresh
        if sample.lag_seconds > max_seconds:
            return False
        return max_bytes is None or sample.lag_bytes <= max_bytes

    def plan(
        self, request: QueryRequest, classification: Classification, now: float | None = None
    ) -> Plan:
        """Decide where ``request`` may run.

        Raises:
            NoEligibleTargetError: a read that may not fall back to the primary
                (``route=replica`` or ``fallback_to_primary=False``) has no eligible replica.
            RequestRejectedError: ``request.min_lsn`` is not an LSN.
        """
        if request.route is RoutePreference.PRIMARY:
            return Plan(Reason.PREFERENCE_PRIMARY, primary_reason=Reason.PREFERENCE_PRIMARY)
        if classification.to_primary:
            return Plan(classification.reason, primary_reason=classification.reason)
        if self.is_learned(classification.fingerprint):
            return Plan(Reason.LEARNED_PRIMARY, primary_reason=Reason.LEARNED_PRIMARY)

        now = time.monotonic() if now is None else now
        want_replica = request.route is RoutePreference.REPLICA
        if want_replica:
            # The caller accepts staleness: only its own limit (if any) applies.
            max_seconds = request.max_staleness if request.max_staleness is not None else math.inf
            max_bytes = None
        else:
            max_seconds = self.settings.max_replica_lag
            if request.max_staleness is not None:
                max_seconds = min(max_seconds, request.max_staleness)
            max_bytes = self.settings.max_replica_lag_bytes

        fresh = [r for r in self.replicas if self._fresh(r, now)]
        eligible = [r for r in fresh if self._within_lag(r, max_seconds, max_bytes)]
        fallback_reason = Reason.REPLICA_LAG if fresh else Reason.NO_HEALTHY_REPLICA
        may_fall_back = self.settings.fallback_to_primary and not want_replica

        if not eligible:
            if may_fall_back:
                return Plan(fallback_reason, primary_reason=fallback_reason)
            raise NoEligibleTargetError(
                f"no replica can serve this read ({fallback_reason.value})"
                + ("" if want_replica else "; fallback to the primary is disabled")
            )

        reason = Reason.PREFERENCE_REPLICA if want_replica else Reason.READ
        ordered = self._order(eligible, classification)
        if (
            self.settings.complex_pool
            and classification.complexity.klass is ComplexityClass.COMPLEX
            and ordered[0].group == self.settings.complex_pool
        ):
            reason = Reason.COMPLEX_READ

        min_lsn = parse_lsn(request.min_lsn) if request.min_lsn else None
        if min_lsn is None:
            return Plan(
                reason,
                replicas=ordered,
                primary=may_fall_back,
                primary_reason=Reason.FAILOVER_RETRY,
            )
        ready = [r for r in ordered if r.replayed_lsn >= min_lsn]
        pending = [r for r in ordered if r.replayed_lsn < min_lsn]
        return Plan(
            Reason.READ_YOUR_WRITES,
            replicas=ready,
            pending=pending,
            # Read-your-writes always has the primary as its last resort, even
            # for route=replica: correctness beats the preference.
            primary=True,
            primary_reason=Reason.RYW_PRIMARY,
            min_lsn=min_lsn,
        )

    def _order(self, eligible: list[Target], classification: Classification) -> list[Target]:
        pool = self.settings.complex_pool
        if not pool:
            return self.strategy.order(eligible)
        is_complex = classification.complexity.klass is ComplexityClass.COMPLEX
        # Complex reads prefer the complex pool; the others keep away from it.
        preferred = [r for r in eligible if (r.group == pool) == is_complex]
        others = [r for r in eligible if (r.group == pool) != is_complex]
        return self.strategy.order(preferred) + self.strategy.order(others)
