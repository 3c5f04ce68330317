"""Replica lag: LSN arithmetic and the lag estimate.

Lag is measured two ways:

* **bytes**: the primary's ``pg_current_wal_lsn()`` minus the replica's
  ``pg_last_wal_replay_lsn()``;
* **seconds**: how long ago the primary was at the position the replica has
  replayed. We keep a short history of the primary's LSN samples and find the
  latest one the replica has reached. This is better than the usual
  ``now() - pg_last_xact_replay_timestamp()``, which grows without bound on an
  idle primary (no new transaction to replay) and so would ban idle replicas.
  Its resolution is the sampling interval.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

__all__ = ["LagSample", "LagTracker"]


@dataclass(frozen=True, slots=True)
class LagSample:
    """One observation of a replica.

    Attributes:
        replay_lsn: WAL position the replica has replayed.
        lag_bytes: primary position minus ``replay_lsn`` (0 when caught up).
        lag_seconds: how long ago the primary was at ``replay_lsn`` (0 when caught up).
        in_recovery: ``pg_is_in_recovery()``; False means it is not a replica (promoted).
        sampled_at: ``time.monotonic()`` of the observation.
    """

    replay_lsn: int
    lag_bytes: int
    lag_seconds: float
    in_recovery: bool
    sampled_at: float


class LagTracker:
    """Primary LSN history, and the lag of a replica given its replay LSN.

    Args:
        horizon: seconds of history kept; lag beyond it is reported as at least that.
    """

    def __init__(self, horizon: float = 300.0) -> None:
        self._horizon = horizon
        self._history: collections.deque[tuple[float, int]] = collections.deque()

    def primary_sample(self, lsn: int, at: float | None = None) -> None:
        """Record that the primary was at ``lsn`` at monotonic time ``at``."""
        now = time.monotonic() if at is None else at
        if self._history and self._history[-1][1] == lsn:
            return  # no new WAL: the older entry says *since when* it was there
        self._history.append((now, lsn))
        while len(self._history) > 2 and self._history[1][0] < now - self._horizon:
            self._history.popleft()

    @property
    def primary_lsn(self) -> int | None:
        """The primary's last sampled position."""
        return self._history[-1][1] if self._history else None

    def lag(self, replay_lsn: int, at: float | None = None) -> tuple[int, float]:
        """``(bytes, seconds)`` behind the primary for a replica at ``replay_lsn``."""
        now = time.monotonic() if at is None else at
        if not self._history:
            return 0, 0.0
        last_lsn = self._history[-1][1]
        if replay_lsn >= last_lsn:
            return 0, 0.0
        lag_bytes = last_lsn - replay_lsn
        # The primary moved past replay_lsn right after the newest sample the
        # replica has reached: it is behind by the time since that next sample.
        moved_at = self._history[0][0]
        for i in range(len(self._history) - 1, -1, -1):
            if self._history[i][1] <= replay_lsn:
                moved_at = self._history[i + 1][0]
                break
        return lag_bytes, max(0.0, now - moved_at)
