"""Fixtures of the fuzz test: the end-to-end tests' private bus, table and database
connection (a real adapter on real Kafka and PostgreSQL), and the run's settings.

Settings come from the environment, so that ``make fuzz`` and a person
reproducing a failure can change them without editing anything:

* ``FUZZ_SEED``: the seed (default: a new one each run, printed in every report);
* ``FUZZ_REQUESTS``: how many records to send (default 20,000);
* ``FUZZ_FAMILIES``: comma-separated families to send (``-name`` leaves one out);
* ``FUZZ_CASES``: comma-separated fuzz indexes to send, and nothing else (to
  replay the cases a report names, with the same seed).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest
from tests.fuzz.generator import FAMILIES, SCHEDULED
from tests.integration.conftest import bus, make_table, pg  # noqa: F401  (fixtures)

DEFAULT_REQUESTS = 20_000


@dataclass(frozen=True, slots=True)
class FuzzSettings:
    """One run's settings (see the module's docstring)."""

    seed: int
    requests: int
    families: frozenset[str]
    cases: tuple[int, ...] | None

    @property
    def indexes(self) -> list[int]:
        return list(self.cases) if self.cases is not None else list(range(self.requests))

    def repeat(self) -> str:
        """The environment that repeats this run."""
        out = f"FUZZ_SEED={self.seed} FUZZ_REQUESTS={self.requests}"
        if self.families != frozenset((*FAMILIES, *SCHEDULED)):
            out += f" FUZZ_FAMILIES={','.join(sorted(self.families))}"
        return out


def _families(raw: str) -> frozenset[str]:
    every = {*FAMILIES, *SCHEDULED}
    words = [w.strip() for w in raw.split(",") if w.strip()]
    chosen = {w for w in words if not w.startswith("-")} or set(every)
    chosen -= {w[1:] for w in words if w.startswith("-")}
    unknown = (chosen | {w.lstrip("-") for w in words}) - every
    if unknown:
        raise pytest.UsageError(
            f"FUZZ_FAMILIES names unknown families {sorted(unknown)}; known: {sorted(every)}"
        )
    return frozenset(chosen)


@pytest.fixture
def fuzz_settings() -> FuzzSettings:
    """This run's seed, size and selection, from the environment."""
    env = os.environ
    seed = int(env["FUZZ_SEED"]) if env.get("FUZZ_SEED") else random.SystemRandom().getrandbits(32)
    cases = env.get("FUZZ_CASES", "").strip()
    return FuzzSettings(
        seed=seed,
        requests=int(env.get("FUZZ_REQUESTS") or DEFAULT_REQUESTS),
        families=_families(env.get("FUZZ_FAMILIES", "")),
        cases=tuple(int(c) for c in cases.split(",") if c.strip()) if cases else None,
    )
