"""How an adapter verifies its callers' tokens: :class:`IdentitySettings`.

Identity is on when a shared secret (HS256) or a JWKS file (RS256, EdDSA) is
configured; then every request must carry a token naming an allowed role, or
run as the anonymous role when one is set. Read from the environment by
:meth:`IdentitySettings.from_env` (the CLI calls it; the library never reads
the environment by itself). See ``docs/configuration.md``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from querybus.errors import ConfigurationError

__all__ = ["MIN_SECRET_BYTES", "IdentitySettings", "is_plain_role"]

#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32

# A role the database runs statements as is interpolated into SET ROLE; only
# names that read the same quoted or unquoted (lower case, no quoting needed,
# at most NAMEDATALEN - 1 bytes) are accepted, so there is nothing to escape
# and no case-folding surprise.
_PLAIN_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def is_plain_role(name: object) -> bool:
    """Whether ``name`` may be used as a database role: a lower-case plain
    identifier of at most 63 characters, not one of PostgreSQL's reserved
    ``pg_*`` roles (``pg_read_server_files`` and the like grant server access)."""
    return (
        isinstance(name, str)
        and _PLAIN_ROLE.fullmatch(name) is not None
        and not name.startswith("pg_")
    )


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """Token verification settings of an adapter.

    Attributes:
        secret: the HS256 shared secret (``QUERYBUS_JWT_SECRET``), at least
            32 bytes; never shown by ``repr``.
        jwks_file: a JSON Web Key Set file with the RS256 / EdDSA public keys
            (``QUERYBUS_JWKS_FILE``); re-read when it changes.
        audience: when set, a token's ``aud`` must contain it; when not set,
            a token that names an audience is refused (RFC 7519 §4.1.3: a
            token meant for someone else is not for us).
        issuer: when set, a token's ``iss`` must equal it.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        roles: the roles a token may name (``QUERYBUS_ROLES``); required when
            identity is on.
        anon_role: the role of requests without a token (``QUERYBUS_ANON_ROLE``);
            implicitly allowed, it need not be listed in ``roles`` (a token naming
            it gets nothing a request without a token would not get). None: a
            token is required.
        jwks_reload: seconds between checks of the JWKS file's mtime and size.
    """

    secret: str | None = field(default=None, repr=False)
    jwks_file: Path | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 30.0
    roles: frozenset[str] = frozenset()
    anon_role: str | None = None
    jwks_reload: float = 1.0

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            # The length only; never the secret itself.
            raise ConfigurationError(
                f"QUERYBUS_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256 "
                f"(it is {len(self.secret.encode())}); generate one with `openssl rand -hex 32`"
            )
        if not (math.isfinite(self.leeway) and self.leeway >= 0):
            raise ConfigurationError(
                f"QUERYBUS_JWT_LEEWAY must be a non-negative number, got {self.leeway!r}"
            )
        if not (math.isfinite(self.jwks_reload) and self.jwks_reload >= 0):
            raise ConfigurationError(
                f"QUERYBUS_JWKS_RELOAD must be a non-negative number, got {self.jwks_reload!r}"
            )
        bad = sorted(r for r in self.roles if not is_plain_role(r))
        if bad:
            raise ConfigurationError(
                f"QUERYBUS_ROLES: {', '.join(map(repr, bad))} is not a plain role name "
                "(lower-case letters, digits and _, not starting with a digit or pg_)"
            )
        if self.anon_role is not None and not is_plain_role(self.anon_role):
            raise ConfigurationError(
                f"QUERYBUS_ANON_ROLE: {self.anon_role!r} is not a plain role name"
            )
        if not self.enabled:
            if self.anon_role is not None:
                raise ConfigurationError(
                    "QUERYBUS_ANON_ROLE is set but identity is off "
                    "(set QUERYBUS_JWT_SECRET or QUERYBUS_JWKS_FILE)"
                )
            return
        if not self.roles:
            raise ConfigurationError(
                "QUERYBUS_ROLES must list the roles tokens may name when "
                "QUERYBUS_JWT_SECRET or QUERYBUS_JWKS_FILE is set"
            )

    def __repr__(self) -> str:
        # The secret is reduced to whether it is set: a repr lands in logs.
        return (
            f"IdentitySettings(secret={'<set>' if self.secret else None}, "
            f"jwks_file={self.jwks_file!r}, audience={self.audience!r}, "
            f"issuer={self.issuer!r}, leeway={self.leeway!r}, roles={sorted(self.roles)!r}, "
            f"anon_role={self.anon_role!r}, jwks_reload={self.jwks_reload!r})"
        )

    @property
    def enabled(self) -> bool:
        """Whether requests are authenticated at all (a secret or a JWKS file is set)."""
        return self.secret is not None or self.jwks_file is not None

    @property
    def allowed_roles(self) -> frozenset[str]:
        """``roles`` plus the anonymous role, when there is one."""
        return self.roles | {self.anon_role} if self.anon_role else self.roles

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentitySettings:
        """The settings in ``env`` (default: ``os.environ``).

        Raises:
            ConfigurationError: a variable is invalid, or they contradict each other.
        """
        env = os.environ if env is None else env
        jwks = _text(env, "QUERYBUS_JWKS_FILE")
        roles = _text(env, "QUERYBUS_ROLES") or ""
        return cls(
            secret=_text(env, "QUERYBUS_JWT_SECRET"),
            jwks_file=Path(jwks) if jwks else None,
            audience=_text(env, "QUERYBUS_JWT_AUDIENCE"),
            issuer=_text(env, "QUERYBUS_JWT_ISSUER"),
            leeway=_number(env, "QUERYBUS_JWT_LEEWAY", 30.0),
            roles=frozenset(r.strip() for r in roles.split(",") if r.strip()),
            anon_role=_text(env, "QUERYBUS_ANON_ROLE"),
            jwks_reload=_number(env, "QUERYBUS_JWKS_RELOAD", 1.0),
        )


def _text(env: Mapping[str, str], name: str) -> str | None:
    # An empty variable is the same as an unset one (`export X=` in a shell file).
    value = env.get(name)
    return value if value else None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
