"""Query complexity: a score and a class from counts taken on the parse tree.

The counts are filled by :mod:`querybus.sql.statement` in the same walk
that checks for writes, so complexity costs no second pass. The weights are a
rough proxy for planner and executor work — joins, subqueries, CTEs and
window functions multiply work; sorts, groups and aggregates add to it — and
exist to keep heavy reads off the replicas that serve point queries
(``RoutingSettings.complex_pool``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Complexity", "ComplexityClass", "ComplexityCounts"]

#: Score at or below which a statement is "simple" / "moderate"; above: "complex".
SIMPLE_MAX = 2
MODERATE_MAX = 8


class ComplexityClass(enum.StrEnum):
    """Coarse complexity class of a statement."""

    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"


@dataclass(slots=True)
class ComplexityCounts:
    """What the parse tree holds (mutable while the tree is walked)."""

    joins: int = 0
    subqueries: int = 0
    ctes: int = 0
    aggregates: int = 0
    windows: int = 0
    sorts: int = 0
    groups: int = 0
    distinct: int = 0
    set_operations: int = 0
    recursive: bool = False


_WEIGHTS = {
    "joins": 2,
    "subqueries": 2,
    "ctes": 2,
    "aggregates": 1,
    "windows": 3,
    "sorts": 1,
    "groups": 1,
    "distinct": 1,
    "set_operations": 2,
}
_RECURSIVE_WEIGHT = 5


@dataclass(frozen=True, slots=True)
class Complexity:
    """A statement's complexity.

    Attributes:
        score: weighted sum of the counts (0 for ``SELECT 1``).
        klass: the class the score falls in.
        counts: the raw counts.
    """

    score: int
    klass: ComplexityClass
    counts: ComplexityCounts

    @classmethod
    def from_counts(cls, counts: ComplexityCounts) -> Complexity:
        """Score ``counts`` and pick the class."""
        score = sum(getattr(counts, name) * weight for name, weight in _WEIGHTS.items())
        if counts.recursive:
            score += _RECURSIVE_WEIGHT
        if score <= SIMPLE_MAX:
            klass = ComplexityClass.SIMPLE
        elif score <= MODERATE_MAX:
            klass = ComplexityClass.MODERATE
        else:
            klass = ComplexityClass.COMPLEX
        return cls(score=score, klass=klass, counts=counts)

    def label(self) -> str:
        """``"<class>:<score>"``, the form replies carry in ``RouteInfo.complexity``."""
        return f"{self.klass.value}:{self.score}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        c = self.counts
        return {
            "score": self.score,
            "class": self.klass.value,
            "joins": c.joins,
            "subqueries": c.subqueries,
            "ctes": c.ctes,
            "aggregates": c.aggregates,
            "windows": c.windows,
            "sorts": c.sorts,
            "groups": c.groups,
            "distinct": c.distinct,
            "set_operations": c.set_operations,
            "recursive": c.recursive,
        }
