"""Reason codes of routing decisions.

Every decision carries exactly one of these; they are stable names (they
label the ``querybus_route_total`` metric and travel in replies and in the
decision log), so they are never renamed, only added.
"""

from __future__ import annotations

import enum

__all__ = ["Reason", "Role"]


class Role(enum.StrEnum):
    """Where a classification says a statement may run."""

    PRIMARY = "primary"
    REPLICA = "replica"


class Reason(enum.StrEnum):
    """Why a statement went where it went."""

    # From the statement itself (classification).
    READ = "read"
    """A plain read: any fresh, healthy replica may serve it."""
    WRITE = "write"
    """INSERT, UPDATE, DELETE or MERGE."""
    DDL = "ddl"
    """Schema, role or permission change."""
    LOCKING = "locking"
    """SELECT … FOR UPDATE/SHARE/NO KEY UPDATE/KEY SHARE, or LOCK TABLE."""
    SELECT_INTO = "select_into"
    """SELECT … INTO creates a table."""
    WRITING_CTE = "writing_cte"
    """A read whose WITH clause (or any subquery) holds INSERT/UPDATE/DELETE/MERGE."""
    SEQUENCE = "sequence_function"
    """nextval, setval, currval, lastval (currval/lastval are per session)."""
    ADVISORY_LOCK = "advisory_lock"
    """pg_advisory_* / pg_try_advisory_*: locks must live on one server."""
    VOLATILE_FUNCTION = "volatile_function"
    """A function pg_proc marks volatile (it may write)."""
    UNKNOWN_FUNCTION = "unknown_function"
    """A function whose volatility is not known: assumed to write."""
    LISTEN_NOTIFY = "listen_notify"
    """LISTEN, UNLISTEN, NOTIFY."""
    COPY_FROM = "copy_from"
    """COPY … FROM loads data."""
    TRANSACTION = "transaction"
    """BEGIN/COMMIT/… on their own, or around writes."""
    PROCEDURE = "procedure"
    """CALL or DO: arbitrary procedural code."""
    MAINTENANCE = "maintenance"
    """VACUUM, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW, CHECKPOINT, …"""
    UTILITY = "utility"
    """SET, PREPARE, cursors and other session or unknown statements."""
    UNPARSABLE = "unparsable"
    """PostgreSQL's grammar rejects it: the primary reports the error."""

    # From the request or the state of the targets (the router).
    PREFERENCE_PRIMARY = "preference_primary"
    """The caller asked for the primary."""
    PREFERENCE_REPLICA = "preference_replica"
    """The caller asked for a replica (configured lag limit waived)."""
    COMPLEX_READ = "complex_read"
    """A complex read served by the replica pool reserved for complex reads."""
    LEARNED_PRIMARY = "learned_primary"
    """A replica once refused this statement as a write (SQLSTATE 25006)."""
    READ_ONLY_RETRY = "read_only_retry"
    """A replica refused it as a write just now; retried on the primary."""
    READ_YOUR_WRITES = "read_your_writes"
    """A replica that has replayed the caller's LSN serves it."""
    RYW_PRIMARY = "ryw_primary"
    """No replica replayed the caller's LSN within the wait budget."""
    REPLICA_LAG = "replica_lag"
    """Replicas exist and are up, but all are too far behind."""
    NO_HEALTHY_REPLICA = "no_healthy_replica"
    """No replica is configured, up, or sampled recently: the primary serves reads."""
    FAILOVER_RETRY = "failover_retry"
    """The first target failed; another one served the read."""
