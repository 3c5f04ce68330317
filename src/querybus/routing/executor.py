"""RoutingExecutor: an :class:`~querybus.execution.Executor` over a
primary and any number of streaming replicas, choosing a target per statement.

Statement execution itself is :func:`querybus.database.postgres.run_on_connection`
(the same code the single-server executor uses); this module only decides
where, retries elsewhere when a server fails, and records why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from querybus.database.idempotency import IdempotencySettings, IdempotencyStore
from querybus.database.postgres import prepare_idempotency, run_on_connection
from querybus.database.replication import commit_lsn, wait_replayed
from querybus.database.roles import check_roles
from querybus.database.session import check_login
from querybus.database.transactions import TransactionManager, TransactionSettings
from querybus.errors import (
    NoEligibleTargetError,
    OperationalError,
    QueryBusError,
    ReadOnlyTransactionError,
    TargetBusyError,
)
from querybus.execution import Job, Outcome, PoolStats
from querybus.observability.metrics import Metrics
from querybus.protocol.messages import QueryRequest, RouteInfo
from querybus.routing.classify import Classification, Classifier, FunctionCatalog
from querybus.routing.decisions import RoutingDecision
from querybus.routing.monitor import Monitor
from querybus.routing.reasons import Reason
from querybus.routing.router import Plan, Router
from querybus.routing.settings import RoutingSettings
from querybus.routing.strategies import Strategy
from querybus.routing.targets import ReplicaConfig, Target, dsn_name, is_target_failure

# RoutingSettings is re-exported: callers build both from one import.
__all__ = ["RoutingExecutor", "RoutingSettings"]

log = logging.getLogger(__name__)


class _Attempt:
    """Book-keeping of one request across its attempts."""

    __slots__ = ("attempts", "decided_at", "error", "reason", "target")

    def __init__(self, reason: Reason) -> None:
        self.reason = reason
        # perf_counter() when the attempt that produced the result began: the
        # time before it is routing (classification, plan, waits, failed tries).
        self.decided_at = 0.0
        self.target: Target | None = None
        self.attempts = 0
        self.error: QueryBusError | None = None


class RoutingExecutor:
    """Runs each request on the primary or on a replica.

    Args:
        primary_dsn: the primary.
        replica_dsns: the replicas, as DSNs or :class:`ReplicaConfig`; when
            None, ``settings.replicas``.
        settings: routing settings (default: ``RoutingSettings()``).
        metrics: where to count decisions (``querybus_route_total``,
            ``querybus_route_seconds``).
        on_decision: called with every :class:`RoutingDecision` after the
            statement ran (the adapter publishes them); must not block. An
            exception from it is logged, never raised to the caller.
        catalog: function volatility to classify with; when given,
            ``settings.load_catalog`` is ignored (nothing is read from pg_proc).
        strategy: a balancing strategy object (default: ``settings.strategy``).
        pool_size: connections per server; overrides ``settings.pool_size``.
        idempotency: the durable idempotency store, on the primary (default:
            on, table ``querybus_idempotency``, keys kept 24 h); see
            :mod:`querybus.database.idempotency`.
        allow_superuser: start even when the login is a superuser (see
            :func:`~querybus.database.session.check_login`).
        roles: the roles callers may act as (checked at start: see
            :func:`~querybus.database.roles.check_roles`).
        reset_every_request: reset and check the session after every request.
        transactions: limits of interactive transactions, held on the primary
            (see :mod:`querybus.database.transactions`).

    ``metrics`` and ``on_decision`` are also plain attributes, so a service
    built after its executor can attach them before ``start()``.
    """

    name = "routing"

    def __init__(
        self,
        primary_dsn: str,
        replica_dsns: Sequence[str | ReplicaConfig] | None = None,
        *,
        settings: RoutingSettings | None = None,
        metrics: Metrics | None = None,
        on_decision: Callable[[RoutingDecision], None] | None = None,
        catalog: FunctionCatalog | None = None,
        strategy: Strategy | None = None,
        pool_size: int | None = None,
        idempotency: IdempotencySettings | None = None,
        allow_superuser: bool = False,
        reset_every_request: bool = False,
        roles: Sequence[str] = (),
        transactions: TransactionSettings | None = None,
    ) -> None:
        self._roles = tuple(roles)
        settings = settings or RoutingSettings()
        self._allow_superuser = allow_superuser
        self._reset_every_request = reset_every_request
        if pool_size is not None:
            settings = dataclasses.replace(settings, pool_size=pool_size)
        self.settings = settings
        configs = [
            r if isinstance(r, ReplicaConfig) else ReplicaConfig(dsn=r)
            for r in (settings.replicas if replica_dsns is None else replica_dsns)
        ]
        self.primary = self._target("primary", primary_dsn, is_primary=True)
        # Copy-on-write: never mutated in place, only replaced (see _publish), so
        # a plan or a monitor round iterating it keeps a consistent list.
        self.replicas: list[Target] = []
        for cfg in configs:
            self.replicas = [*self.replicas, self._replica_target(cfg)]
        self._membership = asyncio.Lock()
        self._started = False
        self.classifier = Classifier(catalog, cache_size=settings.cache_size)
        self.router = Router(self.primary, self.replicas, settings, strategy)
        self.monitor = Monitor(self.primary, self.replicas, settings, self.classifier)
        self._publish(self.replicas)  # one list object shared by all three
        # An explicit catalog is the caller's choice: do not overwrite it from pg_proc.
        self._auto_catalog = catalog is None and settings.load_catalog
        self.monitor.catalog_stale = self._auto_catalog
        self.metrics = metrics
        self.on_decision = on_decision
        idem = idempotency or IdempotencySettings()
        self.idempotency = IdempotencyStore(idem) if idem.enabled else None
        # Interactive transactions and batches: on the primary, like every write.
        self.transactions = TransactionManager(
            lambda timeout: self.primary.connection(timeout), transactions, want_lsn=True
        )

    def _unique_name(self, wanted: str) -> str:
        names = {r.name for r in self.replicas}
        name, n = wanted, 2
        while name in names:  # two replicas on one host:port (test set-ups)
            name, n = f"{wanted}#{n}", n + 1
        return name

    def _replica_target(self, cfg: ReplicaConfig) -> Target:
        name = self._unique_name(cfg.name or dsn_name(cfg.dsn))
        return self._target(name, cfg.dsn, weight=cfg.weight, group=cfg.group)

    def _publish(self, replicas: list[Target]) -> None:
        """Make ``replicas`` the replica list of the executor, the router and
        the monitor at once (no await in between: nothing runs in the middle)."""
        self.replicas = replicas
        self.router.replicas = replicas
        self.monitor.replicas = replicas

    def _target(
        self,
        name: str,
        dsn: str,
        *,
        is_primary: bool = False,
        weight: float = 1.0,
        group: str = "default",
    ) -> Target:
        s = self.settings
        return Target(
            name,
            dsn,
            is_primary=is_primary,
            weight=weight,
            group=group,
            pool_size=s.pool_size,
            max_statement_timeout=s.max_statement_timeout,
            connect_timeout=s.connect_timeout,
        )

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Open the primary's pool (and create the idempotency table there if
        missing), then the replicas' (a replica that is down is banned, not
        fatal), take a first lag sample and start monitoring.

        Raises:
            OperationalError: the primary cannot be reached.
            QueryError: the idempotency table cannot be created on the primary.
        """
        await self.primary.open()
        try:
            async with self.primary.connection(self.settings.max_statement_timeout) as conn:
                # Replicas have the same roles (they replicate the catalog).
                await check_login(conn, allow_superuser=self._allow_superuser)
                for warning in await check_roles(conn, self._roles) if self._roles else ():
                    log.warning("%s", warning)
                if self.idempotency is not None:
                    # Only the primary ever writes it (replicas get it by replication).
                    await prepare_idempotency(conn, self.idempotency)
                await self.transactions.prepare(conn)
        except BaseException:
            await self.primary.close()
            raise
        self.transactions.start()
        if self.idempotency is not None:
            self.idempotency.start_cleanup(
                lambda: self.primary.connection(self.settings.max_statement_timeout)
            )
        for replica in self.replicas:
            await self._open_or_ban(replica, "at start")
        await self.monitor.start()
        self._started = True

    async def stop(self) -> None:
        """Stop monitoring and close every pool."""
        self._started = False
        await self.transactions.stop()
        if self.idempotency is not None:
            await self.idempotency.stop_cleanup()
        await self.monitor.stop()
        # Under the lock: a replica being added right now is closed too.
        async with self._membership:
            for target in [*self.replicas, self.primary]:
                await target.close()

    # -- replicas added and removed while running ------------------------------

    def replica(self, name: str) -> Target | None:
        """The replica called ``name`` (as in ``replica:<name>``), if any."""
        return next((r for r in self.replicas if r.name == name), None)

    async def add_replica(self, config: ReplicaConfig) -> Target:
        """Add a replica to routing and return its target.

        Its name is ``config.name`` (else ``host:port``), made unique with a
        ``#2`` suffix as in the constructor. On a started executor its pool is
        opened and a first lag sample taken before it joins the list, so it
        serves reads at once; a replica that is down joins banned (the monitor
        readmits it when it answers), as at :meth:`start`. Before ``start()``
        it simply joins the list.
        """
        async with self._membership:
            target = self._replica_target(config)
            try:
                if self._started and await self._open_or_ban(target, "when added"):
                    await self.monitor.sample_replica(target)
            except BaseException:
                # Cancelled (a discovery loop stopping) before the target joined
                # the list: nobody else would ever close its pool.
                target.terminate()
                raise
            # The name was made unique against the list as it is now (the lock
            # keeps it so): build a new list, never append in place.
            self._publish([*self.replicas, target])
        log.info(
            "routing: %s added (weight %g, group %s)", target.label, target.weight, target.group
        )
        return target

    async def remove_replica(self, name: str, *, grace: float | None = None) -> Target | None:
        """Take the replica called ``name`` out of routing at once, then close
        its pool once the statements running on it have finished (at most
        ``grace`` seconds, default ``settings.max_statement_timeout``).

        Returns the removed target, or None when no replica has that name.
        """
        async with self._membership:
            target = self.replica(name)
            if target is None:
                return None
            self._publish([r for r in self.replicas if r is not target])
            # From here no new plan includes it; a plan made just before may
            # still try it: retire() makes such attempts fail over (it opens
            # nothing new) and waits for the running ones.
            target.retired = True
        log.info("routing: %s removed", target.label)
        await target.retire(self.settings.max_statement_timeout if grace is None else grace)
        return target

    async def _open_or_ban(self, target: Target, when: str) -> bool:
        """Open ``target``'s pool; a replica that is down is banned, not fatal
        (the monitor readmits it when it answers)."""
        try:
            await target.open()
        except QueryBusError as exc:
            log.warning("routing: replica %s unavailable %s: %s", target.label, when, exc)
            self._ban(target, exc)
            return False
        return True

    def _ban(self, target: Target, exc: BaseException) -> None:
        target.mark_failed(
            exc, base=self.settings.ban_seconds, maximum=self.settings.ban_max_seconds
        )

    async def __aenter__(self) -> RoutingExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pool_stats(self) -> dict[str, PoolStats]:
        """The pool of each target that has one open (replicas open theirs lazily)."""
        stats = {}
        for target in (self.primary, *self.replicas):
            current = target.pool_stats()
            if current is not None:
                stats[target.label] = current
        return stats

    async def ping(self, timeout: float) -> None:
        """Raise unless the primary answers ``SELECT 1`` in time (replicas are optional).

        Raises:
            OperationalError: the primary does not answer.
        """
        await self.primary.ping_pool(timeout)

    # -- running -----------------------------------------------------------

    def classify(self, sql: str) -> Classification:
        """How the router classifies ``sql`` (cached; no I/O)."""
        return self.classifier.classify(sql)

    async def run(self, job: Job) -> Outcome:
        """Run ``job`` where the routing rules say.

        Raises:
            QueryError: the database refused the statement (precise subclass).
            OperationalError: no server that may run it could be reached.
            NoEligibleTargetError: a read that may not use the primary found no replica.
            DeadlineExceededError: its deadline passed before it could run.
        """
        started = time.perf_counter()
        request = job.request
        cls = self.classifier.classify(job.statement)
        try:
            plan = self.router.plan(request, cls)
        except QueryBusError as exc:
            self._record(request, cls, _failed(cls, exc), None, started)
            raise
        state = _Attempt(plan.reason)
        try:
            outcome = await self._execute(job, cls, plan, state)
        except QueryBusError as exc:
            state.error = exc
            self._record(request, cls, state, None, started)
            raise
        if cls.reason is Reason.DDL and self._auto_catalog:
            # CREATE/ALTER/DROP FUNCTION changes pg_proc: re-read it on the next round.
            self.monitor.catalog_stale = True
        self._record(request, cls, state, outcome, started)
        return outcome

    async def _execute(self, job: Job, cls: Classification, plan: Plan, state: _Attempt) -> Outcome:
        replicas = plan.replicas[: self.settings.read_attempts]
        for target in replicas:
            outcome = await self._try_replica(target, job, cls, state)
            if outcome is not None:
                return outcome
            if state.reason is Reason.READ_ONLY_RETRY:
                break
        else:
            if plan.pending and plan.min_lsn is not None and not state.attempts:
                outcome = await self._try_pending(plan, job, cls, state)
                if outcome is not None:
                    return outcome
        if not (plan.primary or state.reason is Reason.READ_ONLY_RETRY):
            if state.error is not None:
                raise state.error
            raise NoEligibleTargetError("no replica could serve this read")
        if state.attempts and state.reason is not Reason.READ_ONLY_RETRY:
            state.reason = Reason.FAILOVER_RETRY
        elif not state.attempts:
            state.reason = plan.primary_reason
        # A statement a replica refused as a write did write here: its caller
        # needs the LSN for read-your-writes like any other writer's.
        want_lsn = cls.writes or self.router.is_learned(cls.fingerprint)
        store = self.idempotency and self.idempotency.for_job(job)
        return await self._run_on(self.primary, job, state, want_lsn=want_lsn, idempotency=store)

    async def _try_replica(
        self, target: Target, job: Job, cls: Classification, state: _Attempt
    ) -> Outcome | None:
        """Run on one replica; None when the caller should try the next target."""
        if state.attempts:
            state.reason = Reason.FAILOVER_RETRY
        return await self._on_replica(
            target,
            cls,
            state,
            lambda: self._run_on(target, job, state, want_lsn=False),
        )

    async def _try_pending(
        self, plan: Plan, job: Job, cls: Classification, state: _Attempt
    ) -> Outcome | None:
        """Wait (up to the budget) for the best pending replica to replay the
        caller's LSN, then run there on the same connection."""
        assert plan.min_lsn is not None
        min_lsn = plan.min_lsn
        target = plan.pending[0]
        budget = min(self.settings.ryw_wait, job.deadline.remaining())
        if budget <= 0:
            return None

        async def run() -> Outcome | None:
            async with target.connection(budget) as conn:
                lsn = await wait_replayed(conn, min_lsn, budget=budget, poll=self.settings.ryw_poll)
                if lsn is None:
                    return None
                target.replayed_lsn = max(target.replayed_lsn, lsn)
                state.attempts += 1
                state.target = target
                state.decided_at = time.perf_counter()
                return await run_on_connection(
                    conn,
                    job,
                    session_timeout=self.settings.max_statement_timeout,
                    reset=self._reset_every_request,
                )

        return await self._on_replica(target, cls, state, run)

    async def _on_replica(
        self,
        target: Target,
        cls: Classification,
        state: _Attempt,
        run: Callable[[], Awaitable[Outcome | None]],
    ) -> Outcome | None:
        """What every attempt on a replica does with its failures, on every
        path (a plain read, a read-your-writes wait): None means "try the next
        target, or the primary".

        Raises:
            QueryError: the statement itself failed (another server would fail too).
        """
        try:
            return await run()
        except ReadOnlyTransactionError as exc:
            # The classifier missed a write (a function that writes, say): it
            # never ran, so the primary can run it, and we remember the statement.
            log.info("routing: %s refused %s as a write; learned", target.label, cls.fingerprint)
            self.router.learn_primary_only(cls.fingerprint)
            state.reason = Reason.READ_ONLY_RETRY
            state.error = exc
            return None
        except TargetBusyError as exc:
            # Busy, not broken: try the next target without banning this one.
            state.error = exc
            return None
        except OperationalError as exc:
            if not is_target_failure(exc):
                raise
            self._ban(target, exc)
            state.error = exc
            return None

    async def _run_on(
        self,
        target: Target,
        job: Job,
        state: _Attempt,
        *,
        want_lsn: bool,
        idempotency: IdempotencyStore | None = None,
    ) -> Outcome:
        state.attempts += 1
        state.target = target
        state.decided_at = time.perf_counter()
        async with target.connection(job.deadline.left()) as conn:
            outcome = await run_on_connection(
                conn,
                job,
                session_timeout=self.settings.max_statement_timeout,
                idempotency=idempotency,
                reset=self._reset_every_request,
            )
            if want_lsn:
                # Read after the commit (also of a stored outcome's original,
                # which committed before we could read it): past its commit record.
                outcome.lsn = await commit_lsn(conn)
            return outcome

    # -- recording -----------------------------------------------------------

    def _record(
        self,
        request: QueryRequest,
        cls: Classification,
        state: _Attempt,
        outcome: Outcome | None,
        started: float,
    ) -> None:
        target = state.target
        label = target.label if target is not None else "none"
        execute = outcome.execute_seconds if outcome is not None else 0.0
        route_seconds = (state.decided_at or time.perf_counter()) - started
        if outcome is not None:
            outcome.route = RouteInfo(
                target=label, reason=state.reason.value, complexity=cls.complexity.label()
            )
            outcome.route_seconds = route_seconds
        if self.metrics is not None:
            self.metrics.count_route(label, state.reason.value)
            self.metrics.route_seconds.observe(route_seconds)
        if self.on_decision is None:
            return
        sample = target.sample if target is not None and not target.is_primary else None
        error = state.error if outcome is None else None
        decision = RoutingDecision(
            request_id=request.id,
            fingerprint=cls.fingerprint,
            target=label,
            reason=state.reason.value,
            classified=cls.role.value,
            complexity_score=cls.complexity.score,
            complexity_class=cls.complexity.klass.value,
            lag_seconds=sample.lag_seconds if sample is not None else None,
            lag_bytes=sample.lag_bytes if sample is not None else None,
            route_seconds=route_seconds,
            execute_seconds=execute,
            attempts=state.attempts,
            ok=outcome is not None,
            error=(getattr(error, "sqlstate", None) or error.code) if error is not None else None,
            timestamp=time.time(),
        )
        try:
            self.on_decision(decision)
        except Exception:  # a broken sink must not fail the caller's request
            log.exception("routing: on_decision callback failed")


def _failed(cls: Classification, exc: QueryBusError) -> _Attempt:
    state = _Attempt(cls.reason)
    state.error = exc
    return state
