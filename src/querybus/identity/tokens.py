"""Verifying callers' tokens (JWTs): :class:`TokenVerifier`. The only PyJWT importer.

A token is accepted when its signature verifies with a configured key —
HS256 with the shared secret, RS256 / EdDSA with the JWKS file's key named by
its ``kid`` — its times hold (``exp`` required; ``nbf``, ``iat`` when present;
all with the leeway), its ``iss`` / ``aud`` match, and its ``role`` claim is an
allowed plain role name. The algorithm is chosen by the key, never by the
token alone: HS256 only ever uses the secret, RS256 only an RSA key, EdDSA
only an OKP key (no algorithm confusion, no ``none``).

Error messages say what was wrong, never the token or any key material; PyJWT's
own messages are not passed on (some quote a key).

Verification is on every request's path, so it is cached twice: key objects
per ``kid`` (built once per JWKS load), and verified tokens in a small LRU
keyed by the token's SHA-256, so a client reusing its token pays for the
signature once; the times are checked again on every use, and the cache is
emptied when the key set changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import jwt.exceptions
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from querybus.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TokenExpiredError,
)
from querybus.execution import Identity
from querybus.identity.settings import IdentitySettings, is_plain_role

__all__ = ["MAX_TOKEN_LENGTH", "TokenVerifier", "claims_json", "issue_token"]

log = logging.getLogger("querybus.identity")

#: Longer tokens are refused before any parsing (a header is no place for a document).
MAX_TOKEN_LENGTH = 16 * 1024
#: Verified tokens remembered (per verifier).
DEFAULT_CACHE_SIZE = 1024
#: Smallest RSA modulus accepted from the JWKS file (NIST SP 800-131A).
MIN_RSA_BITS = 2048

# The algorithm each JWK key type may verify. HS256 is not here: it uses the
# configured secret only, never a key from the file (so an RSA public key can
# never be used as an HMAC secret).
_ALGORITHM_OF_KTY = {"RSA": "RS256", "OKP": "EdDSA"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})


@dataclass(frozen=True, slots=True)
class _Key:
    algorithm: str
    key: Any  # a cryptography public key object, built once per load


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    exp: float
    nbf: float | None
    generation: int  # of the key set it was verified with


def claims_json(claims: Mapping[str, Any]) -> str:
    """Claims as compact JSON with sorted keys: what SQL reads as ``request.jwt.claims``."""
    return json.dumps(claims, separators=(",", ":"), sort_keys=True)


class TokenVerifier:
    """Turns a request's token into an :class:`~querybus.execution.Identity`.

    Args:
        settings: what to accept; must be enabled (a secret or a JWKS file).
        clock: wall-clock seconds since the epoch, for ``exp`` / ``nbf`` / ``iat``.
        monotonic: seconds, for spacing the JWKS file checks.
        cache_size: verified tokens remembered (0: none).

    Raises:
        ConfigurationError: identity is off, or the JWKS file cannot be read at start.
    """

    def __init__(
        self,
        settings: IdentitySettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if not settings.enabled:
            raise ConfigurationError(
                "identity is off: set QUERYBUS_JWT_SECRET or QUERYBUS_JWKS_FILE"
            )
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._cache_size = max(0, cache_size)
        self._secret = settings.secret.encode() if settings.secret else None
        self._allowed = settings.allowed_roles
        self._leeway = settings.leeway
        # Times are checked here, not by PyJWT, so that a cached token is held
        # to exactly the same rules against the injectable clock.
        self._options: dict[str, Any] = {
            "verify_signature": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": True,  # with no audience set, a token naming one is refused
            "verify_iss": settings.issuer is not None,
            "require": ["exp"],
        }
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._keys: dict[str, _Key] = {}
        self._generation = 0
        self._file_state: tuple[int, int, int] | None = None
        self._checked_at = -math.inf
        self._warned_state: object = None
        if settings.jwks_file is not None:
            try:
                self._keys = _load_jwks(settings.jwks_file)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"QUERYBUS_JWKS_FILE {str(settings.jwks_file)!r} cannot be used: "
                    f"{_describe(exc)}"
                ) from exc
            self._file_state = _stat(settings.jwks_file)
            self._checked_at = monotonic()
            if not self._keys:
                log.warning("JWKS file %s holds no usable key yet", settings.jwks_file)

    def __repr__(self) -> str:
        return f"TokenVerifier({self._settings!r}, keys={sorted(self._keys)!r})"

    @property
    def key_ids(self) -> frozenset[str]:
        """The ``kid`` of every key currently accepted from the JWKS file."""
        return frozenset(self._keys)

    # -- the request path -------------------------------------------------------

    def verify_header(self, value: bytes | None) -> Identity:
        """:meth:`verify` on the raw ``querybus-authorization`` header value."""
        if value is None:
            return self.verify(None)
        if len(value) > MAX_TOKEN_LENGTH:
            raise AuthenticationError(f"the token is longer than {MAX_TOKEN_LENGTH} bytes")
        try:
            token = value.decode("ascii")  # a JWT is base64url and dots only
        except UnicodeDecodeError:
            raise AuthenticationError("the token is malformed (not ASCII)") from None
        return self.verify(token)

    def verify(self, token: str | None) -> Identity:
        """The identity ``token`` proves (None: the request carried no token).

        Raises:
            TokenExpiredError: the token's ``exp`` has passed (beyond the leeway).
            AuthenticationError: no token and no anonymous role; a malformed
                token, a bad signature, an unknown ``kid``, a refused algorithm,
                wrong ``iss`` / ``aud``, ``nbf`` or ``iat`` in the future, a
                missing or malformed ``role`` / ``sub`` claim.
            PermissionDeniedError: the token's role is not an allowed one.
        """
        if token is None:
            return self._anonymous()
        if not isinstance(token, str) or not token:
            raise AuthenticationError("the token is malformed (empty)")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError(f"the token is longer than {MAX_TOKEN_LENGTH} bytes")
        self._maybe_reload()
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest() if self._cache_size else b""
        if self._cache_size:
            hit = self._cached(digest)
            if hit is not None:
                self._check_times(hit.exp, hit.nbf, None, now, digest)
                return hit.identity
        generation = self._generation
        claims = self._decode(token)
        exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
        if exp is None:  # PyJWT's "require" already refused a token without one
            raise AuthenticationError("the token has no exp claim")
        self._check_times(exp, nbf, iat, now, None)
        identity = self._identity(claims)
        if self._cache_size:
            self._remember(digest, _Verified(identity, exp, nbf, generation))
        return identity

    def _anonymous(self) -> Identity:
        role = self._settings.anon_role
        if role is None:
            raise AuthenticationError("a token is required")
        return Identity(
            subject="anonymous", role=role, claims=claims_json({"role": role}), anonymous=True
        )

    def _decode(self, token: str) -> dict[str, Any]:
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg == "HS256":
            if self._secret is None:
                raise AuthenticationError(
                    "HS256 tokens are not accepted here (no shared secret is configured)"
                )
            key: Any = self._secret
        elif alg in ("RS256", "EdDSA"):
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise AuthenticationError(f"the {alg} token names no key (no kid header)")
            entry = self._keys.get(kid)
            if entry is None:
                raise AuthenticationError(f"the token's key {kid[:64]!r} is not a known key")
            if entry.algorithm != alg:
                raise AuthenticationError(
                    f"the token's key {kid!r} is for {entry.algorithm}, not {alg}"
                )
            key = entry.key
        else:
            # "none", HS384, ES256, … and anything unknown.
            shown = alg[:16] if isinstance(alg, str) else type(alg).__name__
            raise AuthenticationError(f"the token's algorithm {shown!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("the token's signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"the token has no {exc.claim} claim") from exc
        except jwt.InvalidAudienceError as exc:
            expected = self._settings.audience
            raise AuthenticationError(
                f"the token is not for this audience (aud must contain {expected!r})"
                if expected
                else "the token names an audience (aud) and none is accepted here"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError(
                f"the token's issuer (iss) is not {self._settings.issuer!r}"
            ) from exc
        except jwt.exceptions.InvalidSubjectError as exc:
            raise AuthenticationError("the token's sub claim is not a string") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("the token is malformed or not verifiable") from exc
        if not isinstance(claims, dict):
            raise AuthenticationError("the token's payload is not a JSON object")
        return claims

    def _check_times(
        self, exp: float, nbf: float | None, iat: float | None, now: float, digest: bytes | None
    ) -> None:
        leeway = self._leeway
        if now > exp + leeway:
            if digest is not None:
                self._forget(digest)
            raise TokenExpiredError("the token has expired")
        if nbf is not None and nbf > now + leeway:
            raise AuthenticationError("the token is not valid yet (nbf is in the future)")
        if iat is not None and iat > now + leeway:
            raise AuthenticationError("the token was issued in the future (iat)")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        role = claims.get("role")
        if role is None:
            raise AuthenticationError("the token has no role claim")
        if not is_plain_role(role):
            # Not echoed: it is not a name, it may be anything.
            raise AuthenticationError("the token's role claim is not a plain role name")
        if role not in self._allowed:
            raise PermissionDeniedError(f"role {role!r} is not allowed here")
        # Without "sub" every such caller shares one subject, hence one rate
        # limit: they can slow each other down, never escape a limit.
        subject = claims.get("sub")
        if subject is None:
            subject = "unknown"
        elif not isinstance(subject, str) or not subject:
            raise AuthenticationError("the token's sub claim is not a non-empty string")
        return Identity(subject=subject, role=role, claims=claims_json(claims), anonymous=False)

    # -- the cache of verified tokens ---------------------------------------------

    def _cached(self, digest: bytes) -> _Verified | None:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None:
                return None
            if hit.generation != self._generation:
                # Verified with a key set that has since changed.
                del self._cache[digest]
                return None
            self._cache.move_to_end(digest)
            return hit

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        with self._lock:
            if verified.generation != self._generation:
                return
            self._cache[digest] = verified
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _forget(self, digest: bytes) -> None:
        with self._lock:
            self._cache.pop(digest, None)

    # -- the JWKS file --------------------------------------------------------------

    def _maybe_reload(self) -> None:
        path = self._settings.jwks_file
        if path is None:
            return
        now = self._monotonic()
        if now - self._checked_at < self._settings.jwks_reload:
            return
        with self._lock:
            if now - self._checked_at < self._settings.jwks_reload:
                return  # another thread just checked
            self._checked_at = now
            try:
                state = _stat(path)
            except OSError as exc:
                self._warn_once(exc, f"JWKS file {path} cannot be read ({_describe(exc)})")
                return
            if state == self._file_state:
                self._warned_state = None
                return
            try:
                keys = _load_jwks(path)
            except (OSError, ValueError) as exc:
                self._warn_once(
                    state,
                    f"JWKS file {path} is not usable ({_describe(exc)}); "
                    f"keeping the {len(self._keys)} key(s) loaded before",
                )
                return
            self._file_state = state
            self._warned_state = None
            if keys != self._keys:
                self._keys = keys
                self._generation += 1
                self._cache.clear()
                log.info("JWKS file %s reloaded: key ids %s", path, sorted(keys))

    def _warn_once(self, state: object, message: str) -> None:
        # One warning per broken state of the file, not one per check.
        key = state if not isinstance(state, OSError) else (type(state), state.errno)
        if key != self._warned_state:
            self._warned_state = key
            log.warning("%s", message)


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's header, only to pick the key: PyJWT parses and checks the
    whole token again. Read here because PyJWT's ``get_unverified_header``
    costs as much as an HMAC verification (a per-character alphabet check)."""
    head, sep, _ = token.partition(".")
    try:
        if not sep:
            raise ValueError
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise AuthenticationError("the token is malformed") from None
    if not isinstance(header, dict):
        raise AuthenticationError("the token is malformed (its header is not an object)")
    return header


def _stat(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    # mtime, size and inode: an in-place rewrite and an atomic rename are both seen.
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _describe(exc: BaseException) -> str:
    # OSError: its strerror (no file contents); anything else: our own text or
    # the class name, since a parser's message may quote the file (key material).
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, _JwksError):
        return str(exc)
    return type(exc).__name__


class _JwksError(ValueError):
    """The file is not a JWKS document; the message quotes nothing from it."""


def _load_jwks(path: Path) -> dict[str, _Key]:
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        raise _JwksError("not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise _JwksError('not a JWKS document (no "keys" list)')
    keys: dict[str, _Key] = {}
    for index, jwk_data in enumerate(doc["keys"]):
        kid = jwk_data.get("kid") if isinstance(jwk_data, dict) else None
        label = f"key #{index}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")
        problem, entry = _key(jwk_data)
        if entry is not None and kid in keys:
            problem, entry = "its kid is used by an earlier key", None
        if entry is None or not isinstance(kid, str):
            log.warning("JWKS file %s: skipped %s: %s", path, label, problem)
            continue
        keys[kid] = entry
    return keys


def _key(data: object) -> tuple[str, _Key | None]:
    """A JWK as a usable key, or why it is not one (never quoting its material)."""
    if not isinstance(data, dict):
        return "not a JSON object", None
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        return "it has no kid (tokens name their key by kid)", None
    kty = data.get("kty")
    algorithm = _ALGORITHM_OF_KTY.get(kty) if isinstance(kty, str) else None
    if algorithm is None:
        return "key type must be RSA (RS256) or OKP (EdDSA)", None
    if data.get("alg", algorithm) != algorithm:
        return f"a {kty} key is accepted for {algorithm} only", None
    if data.get("use", "sig") != "sig":
        return "not a signing key (use is not sig)", None
    if any(private in data for private in ("d", "p", "q", "dp", "dq", "qi")):
        return "it holds private key material; publish the public key only", None
    if kty == "OKP" and data.get("crv") not in _OKP_CURVES:
        return "an OKP key must be on curve Ed25519 or Ed448", None
    try:
        key = jwt.PyJWK(data, algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        return f"it cannot be loaded ({type(exc).__name__})", None
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"an RSA key must have at least {MIN_RSA_BITS} bits", None
    return "", _Key(algorithm, key)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python, not a NumericDate.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthenticationError(f"the token's {name} claim is not a number")
    return float(value)


def issue_token(
    secret: str,
    *,
    role: str,
    subject: str,
    ttl: float = 3600.0,
    claims: Mapping[str, Any] | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for local development and tests (``querybus token``).

    Production tokens come from an identity provider; this signs with the
    adapters' shared secret.

    Raises:
        ConfigurationError: the secret is too short, the role is not a plain
            role name, or ``ttl`` is not positive.
    """
    IdentitySettings(secret=secret, roles=frozenset({role}))  # the same checks as an adapter's
    if not ttl > 0:
        raise ConfigurationError(f"ttl must be a positive number of seconds, got {ttl!r}")
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = dict(claims or {})
    payload.update(role=role, sub=subject, iat=issued, exp=issued + math.ceil(ttl))
    if audience is not None:
        payload["aud"] = audience
    if issuer is not None:
        payload["iss"] = issuer
    return jwt.encode(payload, secret.encode(), algorithm="HS256")
