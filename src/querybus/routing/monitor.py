"""The background loop that keeps the targets' state current: lag samples,
health (ban and recovery), and the function catalog."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from querybus.cancellation import stop_task
from querybus.errors import QueryBusError
from querybus.routing.classify import Classifier, FunctionCatalog
from querybus.routing.lag import LagSample, LagTracker
from querybus.routing.settings import RoutingSettings
from querybus.routing.targets import Target

__all__ = ["Monitor"]

log = logging.getLogger(__name__)


class Monitor:
    """Samples the primary's WAL position and every replica's replay position.

    A replica that answers is (re)admitted; one that does not is banned (its
    sample also ages out, so it stays out until it answers again).

    Args:
        primary: the primary.
        replicas: the replicas. The executor replaces the list (never mutates
            it) when replicas are added or removed.
        settings: routing settings.
        classifier: receives the function catalog when ``settings.load_catalog``.
    """

    def __init__(
        self,
        primary: Target,
        replicas: Sequence[Target],
        settings: RoutingSettings,
        classifier: Classifier,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.settings = settings
        self.classifier = classifier
        self.tracker = LagTracker()
        self.catalog_stale = settings.load_catalog
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take a first sample (so reads can use replicas at once) and start the loop."""
        await self.sample_once()
        self._task = asyncio.create_task(self._loop(), name="querybus-routing-monitor")

    async def stop(self) -> None:
        """Stop the loop."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lag_interval)
            try:
                await self.sample_once()
            except Exception:  # the loop must outlive any single failure
                log.exception("routing monitor: sampling failed")

    async def sample_once(self) -> None:
        """One round: primary position, then all replicas at once, then the catalog if stale."""
        wait = max(self.settings.connect_timeout, self.settings.lag_interval)
        try:
            lsn = await self.primary.current_wal_lsn(wait)
        except QueryBusError as exc:
            self._failed(self.primary, exc)
        else:
            self.tracker.primary_sample(lsn)
            self.primary.mark_ok()
        # One read of the list: replicas added or removed meanwhile replace it
        # (copy-on-write), they never change the list this round iterates.
        replicas = self.replicas
        await asyncio.gather(*(self._sample_replica(r, wait) for r in replicas))
        if self.catalog_stale:
            await self._load_catalog(wait)

    async def sample_replica(self, replica: Target) -> None:
        """Sample one replica now (a replica just added, so it serves at once)."""
        await self._sample_replica(
            replica, max(self.settings.connect_timeout, self.settings.lag_interval)
        )

    async def _sample_replica(self, replica: Target, wait: float) -> None:
        if replica.retired:
            return
        try:
            in_recovery, replay = await replica.replica_status(wait)
            if replica._pool is None:
                await replica.open()
        except QueryBusError as exc:
            self._failed(replica, exc)
            return
        now = time.monotonic()
        replay_lsn = replay if replay is not None else 0
        lag_bytes, lag_seconds = self.tracker.lag(replay_lsn, now)
        replica.sample = LagSample(
            replay_lsn=replay_lsn,
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            in_recovery=in_recovery and replay is not None,
            sampled_at=now,
        )
        if replica.banned(now) or replica.failures:
            log.info("routing: %s answers again, back in rotation", replica.label)
        replica.mark_ok()

    def _failed(self, target: Target, exc: BaseException) -> None:
        if not target.failures:
            log.warning("routing: %s failed a health check: %s", target.label, exc)
        target.mark_failed(
            exc, base=self.settings.ban_seconds, maximum=self.settings.ban_max_seconds
        )

    async def _load_catalog(self, wait: float) -> None:
        try:
            volatility = await self.primary.function_catalog(FunctionCatalog.QUERY, wait)
        except QueryBusError as exc:
            log.warning("routing: cannot read pg_proc, using the built-in function table: %s", exc)
            return
        self.classifier.catalog = FunctionCatalog(volatility)
        self.catalog_stale = False
