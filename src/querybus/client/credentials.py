"""The caller's token: sent with every request, refreshed before it expires.

A client has a fixed token or a provider to ask for one. A provided token is
kept until shortly before its ``exp`` (read from the token's payload without
verifying it: the client install needs no JWT library and verifies nothing;
the adapter does), then the provider is asked again — once, however many
requests are waiting for it.

The token is a credential: it is never part of a repr, a log line or an
error message.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable

from querybus.errors import AuthenticationError, InterfaceError, QueryBusError

__all__ = ["TokenProvider", "TokenSource", "token_expiry"]

log = logging.getLogger("querybus.client")

#: Returns the caller's current token (a JWT), synchronously or not.
TokenProvider = Callable[[], str | Awaitable[str]]

#: Ask the provider again this many seconds before the token's ``exp``: more
#: than the time a request may queue, and more than usual clock skew.
REFRESH_MARGIN = 30.0
#: How long a provided token without ``exp`` is used before asking again.
TTL_WITHOUT_EXP = 60.0


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying anything; None when
    the token is not a JWT or has no numeric ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError all are
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


class TokenSource:
    """The token a client sends: a fixed one, or one from a provider.

    Args:
        token: a fixed token (not refreshed).
        provider: called for a token when there is none yet, when the one held
            is within ``margin`` seconds of its ``exp`` (every ``ttl_without_exp``
            seconds when it has none), and when an adapter said it expired.
        clock: wall-clock seconds since the epoch (``exp`` is one).

    Raises:
        InterfaceError: both or neither of ``token`` and ``provider``, an empty
            token, or a provider that is not callable.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        provider: TokenProvider | None = None,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN,
        ttl_without_exp: float = TTL_WITHOUT_EXP,
    ) -> None:
        if (token is None) == (provider is None):
            raise InterfaceError("give either token or token_provider, not both")
        if token is not None and (not isinstance(token, str) or not token):
            raise InterfaceError("token must be a non-empty string")
        if provider is not None and not callable(provider):
            raise InterfaceError("token_provider must be callable")
        self._token = token
        self._provider = provider
        self._clock = clock
        self._margin = margin
        self._ttl = ttl_without_exp
        self._exp: float | None = None
        self._refresh_at = -math.inf
        self._inflight: asyncio.Future[str] | None = None
        #: How many times the provider was called (for tests and diagnostics).
        self.provider_calls = 0

    def __repr__(self) -> str:
        kind = "provider" if self._provider is not None else "fixed"
        return f"TokenSource({kind}, token={'<set>' if self._token else None})"

    @property
    def can_refresh(self) -> bool:
        """Whether a new token can be had (there is a provider)."""
        return self._provider is not None

    async def current(self) -> str:
        """The token to send now, asking the provider first when it is due.

        Raises:
            AuthenticationError: the provider failed and there is no unexpired
                token to fall back on.
            InterfaceError: the provider returned something that is not a token.
        """
        if self._provider is None or self._clock() < self._refresh_at:
            assert self._token is not None
            return self._token
        try:
            return await self._fetch()
        except QueryBusError:
            held, exp = self._token, self._exp
            if held is None or (exp is not None and self._clock() >= exp):
                raise
            # Still valid for a while: better than failing the request now; the
            # next request asks again.
            log.warning("the token provider failed; using the current token until it expires")
            return held

    async def refresh(self, stale: str | None) -> str:
        """A token other than ``stale``, which an adapter said has expired.

        When another request already replaced it, that token is returned
        without asking the provider again.
        """
        if self._token is not None and self._token != stale and self._clock() < self._refresh_at:
            return self._token
        return await self._fetch()

    async def _fetch(self) -> str:
        # One call to the provider at a time: concurrent requests wait for it.
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._call_provider())
            self._inflight.add_done_callback(self._fetched)
        # Shielded: a request that times out while waiting does not cancel the
        # call the others are waiting for.
        return await asyncio.shield(self._inflight)

    def _fetched(self, fut: asyncio.Future[str]) -> None:
        self._inflight = None
        if not fut.cancelled():
            fut.exception()  # retrieved, so an error no one awaited is not logged as lost

    async def _call_provider(self) -> str:
        assert self._provider is not None
        self.provider_calls += 1
        try:
            value = self._provider()
            if inspect.isawaitable(value):
                value = await value
        except QueryBusError:
            raise
        except Exception as exc:
            # The class only: the provider's own message may quote a credential.
            raise AuthenticationError(f"the token provider failed ({type(exc).__name__})") from exc
        if not isinstance(value, str) or not value:
            raise InterfaceError(
                f"the token provider returned {type(value).__name__}, not a non-empty string"
            )
        now = self._clock()
        exp = token_expiry(value)
        self._token, self._exp = value, exp
        if exp is None:
            self._refresh_at = now + self._ttl
        else:
            # A token shorter-lived than twice the margin is refreshed half-way,
            # not on every request.
            self._refresh_at = exp - min(self._margin, max(0.0, exp - now) / 2)
        return value
