"""Caller identity, the token side: IdentitySettings and TokenVerifier.

Keys are generated here (RSA, Ed25519) and published in JWKS files under
tmp_path; time is a fake clock, never a sleep.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from querybus.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    TokenExpiredError,
)
from querybus.execution import Identity
from querybus.identity import IdentitySettings, TokenVerifier, claims_json, issue_token
from querybus.identity.tokens import MAX_TOKEN_LENGTH

SECRET = "s" * 32 + "-a-test-secret-of-enough-bytes"
NOW = 1_700_000_000.0
ROLES = frozenset({"app_user", "app_admin"})


class Clock:
    """A settable clock: the verifier's ``clock`` and ``monotonic``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


def ed_jwk(key: ed25519.Ed25519PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


def write_jwks(path: Path, *keys: Any) -> Path:
    """Rewrite the file and move its mtime on, so a rewrite within one mtime tick is seen."""
    path.write_text(json.dumps({"keys": list(keys)}))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return path


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "agent-7", "role": "app_user", "iat": NOW, "exp": NOW + 600}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def hs(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def rs(payload: dict[str, Any], key: rsa.RSAPrivateKey, kid: str | None = "r1") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def ed(payload: dict[str, Any], key: ed25519.Ed25519PrivateKey, kid: str = "e1") -> str:
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


def verifier(
    clock: Clock | None = None, *, cache_size: int = 1024, **settings: Any
) -> TokenVerifier:
    settings.setdefault("roles", ROLES)
    if "jwks_file" not in settings:
        settings.setdefault("secret", SECRET)
    clock = clock or Clock()
    return TokenVerifier(
        IdentitySettings(**settings), clock=clock, monotonic=clock, cache_size=cache_size
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- settings -------------------------------------------------------------------------


def test_settings_from_env() -> None:
    s = IdentitySettings.from_env(
        {
            "QUERYBUS_JWT_SECRET": SECRET,
            "QUERYBUS_JWKS_FILE": "/etc/querybus/jwks.json",
            "QUERYBUS_JWT_AUDIENCE": "querybus",
            "QUERYBUS_JWT_ISSUER": "https://id.example",
            "QUERYBUS_JWT_LEEWAY": "5",
            "QUERYBUS_ROLES": " app_user, app_admin ,",
            "QUERYBUS_ANON_ROLE": "web_anon",
            "QUERYBUS_JWKS_RELOAD": "0.5",
        }
    )
    assert s.enabled
    assert s.jwks_file == Path("/etc/querybus/jwks.json")
    assert (s.audience, s.issuer, s.leeway, s.jwks_reload) == (
        "querybus",
        "https://id.example",
        5.0,
        0.5,
    )
    assert s.roles == {"app_user", "app_admin"}
    # The anonymous role is implicitly allowed.
    assert s.allowed_roles == {"app_user", "app_admin", "web_anon"}


def test_settings_defaults_are_off() -> None:
    s = IdentitySettings.from_env({"QUERYBUS_JWT_SECRET": "", "QUERYBUS_ROLES": ""})
    assert not s.enabled
    assert (s.leeway, s.jwks_reload, s.anon_role) == (30.0, 1.0, None)
    with pytest.raises(ConfigurationError, match="identity is off"):
        TokenVerifier(s)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"QUERYBUS_JWT_SECRET": SECRET}, "QUERYBUS_ROLES must list"),
        ({"QUERYBUS_JWKS_FILE": "/x.json", "QUERYBUS_ROLES": " , "}, "QUERYBUS_ROLES must list"),
        ({"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "app_user,Admin"}, "plain role"),
        ({"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": 'x";drop'}, "plain role"),
        ({"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "pg_read_server_files"}, "plain"),
        ({"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "a" * 64}, "plain role"),
        (
            {"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "a", "QUERYBUS_ANON_ROLE": "1x"},
            "QUERYBUS_ANON_ROLE",
        ),
        ({"QUERYBUS_ANON_ROLE": "web_anon"}, "identity is off"),
        ({"QUERYBUS_JWT_SECRET": "short", "QUERYBUS_ROLES": "a"}, "at least 32 bytes"),
        (
            {"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "a", "QUERYBUS_JWT_LEEWAY": "-1"},
            "LEEWAY",
        ),
        (
            {"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "a", "QUERYBUS_JWT_LEEWAY": "x"},
            "LEEWAY",
        ),
        (
            {"QUERYBUS_JWT_SECRET": SECRET, "QUERYBUS_ROLES": "a", "QUERYBUS_JWKS_RELOAD": "-1"},
            "RELOAD",
        ),
    ],
)
def test_settings_refuse(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        IdentitySettings.from_env(env)


def test_settings_repr_and_errors_never_show_the_secret() -> None:
    s = IdentitySettings(secret=SECRET, roles=ROLES)
    assert SECRET not in repr(s)
    assert "secret=<set>" in repr(s)
    assert SECRET not in repr(TokenVerifier(s))
    short = "abcdefghijklmnop"
    with pytest.raises(ConfigurationError) as info:
        IdentitySettings(secret=short, roles=ROLES)
    assert short not in str(info.value)


# -- HS256 ---------------------------------------------------------------------------


def test_hs256_token_gives_its_identity() -> None:
    token = hs(claims(tenant=3))
    identity = verifier().verify(token)
    assert identity == Identity(
        subject="agent-7",
        role="app_user",
        claims=claims_json(claims(tenant=3)),
        anonymous=False,
    )
    # Compact, sorted JSON: exactly what SQL reads.
    assert json.loads(identity.claims)["tenant"] == 3
    assert " " not in identity.claims
    assert identity.claims.startswith('{"exp":')


def test_issue_token_round_trips() -> None:
    token = issue_token(
        SECRET,
        role="app_admin",
        subject="dev",
        ttl=60,
        claims={"tenant": "t1"},
        audience="qb",
        issuer="me",
        now=NOW,
    )
    identity = verifier(audience="qb", issuer="me").verify(token)
    assert (identity.subject, identity.role) == ("dev", "app_admin")
    assert json.loads(identity.claims) == {
        "aud": "qb",
        "exp": NOW + 60,
        "iat": NOW,
        "iss": "me",
        "role": "app_admin",
        "sub": "dev",
        "tenant": "t1",
    }
    with pytest.raises(ConfigurationError):
        issue_token("short", role="a", subject="s")
    with pytest.raises(ConfigurationError):
        issue_token(SECRET, role="Bad Role", subject="s")
    with pytest.raises(ConfigurationError):
        issue_token(SECRET, role="a", subject="s", ttl=0)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="signature") as info:
        verifier().verify(hs(claims(), secret="x" * 40))
    assert type(info.value) is AuthenticationError


def test_hs256_without_a_secret_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"))
    with pytest.raises(AuthenticationError, match="HS256"):
        verifier(jwks_file=jwks).verify(hs(claims()))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (claims(exp=None), "no exp claim"),
        (claims(exp="soon"), "exp claim is not a number"),
        (claims(exp=True), "exp claim is not a number"),
        (claims(nbf=NOW + 31), "not valid yet"),
        (claims(iat=NOW + 31), "issued in the future"),
        (claims(role=None), "no role claim"),
        (claims(role="App User"), "not a plain role name"),
        (claims(role=["app_user"]), "not a plain role name"),
        (claims(role="pg_write_server_files"), "not a plain role name"),
        (claims(sub=42), "sub claim"),
        (claims(sub=""), "sub claim"),
        (claims(aud="someone-else"), "names an audience"),
    ],
)
def test_invalid_claims_are_refused(payload: dict[str, Any], match: str) -> None:
    with pytest.raises(AuthenticationError, match=match) as info:
        verifier().verify(hs(payload))
    assert type(info.value) is AuthenticationError


def test_missing_sub_is_the_shared_subject_unknown() -> None:
    assert verifier().verify(hs(claims(sub=None))).subject == "unknown"


def test_role_outside_the_allowlist_is_forbidden() -> None:
    with pytest.raises(PermissionDeniedError, match="'postgres' is not allowed"):
        verifier().verify(hs(claims(role="postgres")))
    # The anonymous role is implicitly allowed, also in a token.
    v = verifier(anon_role="web_anon")
    assert v.verify(hs(claims(role="web_anon"))).role == "web_anon"


def test_expiry_and_leeway() -> None:
    clock = Clock()
    v = verifier(clock, leeway=30)
    token = hs(claims(exp=NOW + 100, nbf=NOW + 20))
    assert v.verify(token).role == "app_user"  # nbf within the leeway
    clock.now = NOW + 130  # exp + leeway: still accepted
    assert v.verify(token).role == "app_user"
    clock.now = NOW + 130.5
    with pytest.raises(TokenExpiredError, match="expired"):
        v.verify(token)
    # A fresh verifier (no cache) says the same.
    with pytest.raises(TokenExpiredError):
        verifier(clock, leeway=30, cache_size=0).verify(token)
    # With no leeway, one second past exp is expired.
    clock.now = NOW + 101
    with pytest.raises(TokenExpiredError):
        verifier(clock, leeway=0).verify(token)


def test_audience_and_issuer() -> None:
    v = verifier(audience="querybus", issuer="https://id.example")
    good = claims(aud=["other", "querybus"], iss="https://id.example")
    assert v.verify(hs(good)).role == "app_user"
    for payload, match in [
        (claims(aud="other", iss="https://id.example"), "not for this audience"),
        (claims(iss="https://id.example"), "no aud claim"),
        (claims(aud="querybus", iss="https://evil.example"), "issuer"),
        (claims(aud="querybus"), "no iss claim"),
    ]:
        with pytest.raises(AuthenticationError, match=match):
            v.verify(hs(payload))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c",
        "x" * (MAX_TOKEN_LENGTH + 1),
        b64(b'{"alg":"HS256"}') + "." + b64(b"[1,2]") + ".sig",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        verifier().verify(token)
    assert type(info.value) is AuthenticationError


def test_payload_that_is_not_an_object_is_refused() -> None:
    token = jwt.api_jws.encode(b"[1,2,3]", SECRET, algorithm="HS256")
    with pytest.raises(AuthenticationError) as info:
        verifier().verify(token)
    assert type(info.value) is AuthenticationError


def test_alg_none_and_unknown_algorithms_are_refused() -> None:
    unsigned = jwt.encode(claims(), "", algorithm="none")
    with pytest.raises(AuthenticationError, match="'none' is not accepted"):
        verifier().verify(unsigned)
    hs512 = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    with pytest.raises(AuthenticationError, match="'HS512' is not accepted"):
        verifier().verify(hs512)


def test_header_helper_and_anonymous() -> None:
    v = verifier(anon_role="web_anon")
    anon = v.verify_header(None)
    assert anon == Identity(
        subject="anonymous", role="web_anon", claims='{"role":"web_anon"}', anonymous=True
    )
    assert v.verify_header(hs(claims()).encode()).subject == "agent-7"
    with pytest.raises(AuthenticationError, match="not ASCII"):
        v.verify_header(b"\xff\xfe")
    with pytest.raises(AuthenticationError, match="longer than"):
        v.verify_header(b"x" * (MAX_TOKEN_LENGTH + 1))
    with pytest.raises(AuthenticationError, match="a token is required"):
        verifier().verify(None)


# -- RS256 and EdDSA from a JWKS file ---------------------------------------------------


def test_rs256_and_eddsa_from_jwks(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"), ed_jwk(ed_key, "e1"))
    v = verifier(jwks_file=jwks)
    assert v.key_ids == {"r1", "e1"}
    assert v.verify(rs(claims(), rsa_key)).role == "app_user"
    assert v.verify(ed(claims(sub="ed"), ed_key)).subject == "ed"


def test_jwks_refusals(
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    rsa_key2: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"), ed_jwk(ed_key, "e1"))
    v = verifier(jwks_file=jwks, secret=SECRET)
    cases = [
        (rs(claims(), rsa_key, kid=None), "no kid"),
        (rs(claims(), rsa_key, kid="nope"), "not a known key"),
        (rs(claims(), rsa_key2, kid="r1"), "signature"),  # signed by another key
        # The Ed25519 key named, an RSA signature: the key decides the algorithm.
        (rs(claims(), rsa_key, kid="e1"), "is for EdDSA, not RS256"),
        (ed(claims(), ed_key, kid="r1"), "is for RS256, not EdDSA"),
    ]
    for token, match in cases:
        with pytest.raises(AuthenticationError, match=match):
            v.verify(token)


def test_algorithm_confusion_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    # The classic attack: HS256 "signed" with the RSA public key as the secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = json.dumps(rsa_jwk(rsa_key, "r1")).encode()
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"))
    with_secret = verifier(jwks_file=jwks, secret=SECRET)
    without_secret = verifier(jwks_file=jwks)
    for material in (public_pem, public_jwk):
        # PyJWT refuses to sign with a PEM key as an HMAC secret; sign by hand.
        forged = _hs256_by_hand(claims(), material, kid="r1")
        with pytest.raises(AuthenticationError, match="signature"):
            with_secret.verify(forged)
        with pytest.raises(AuthenticationError, match="no shared secret"):
            without_secret.verify(forged)


def _hs256_by_hand(payload: dict[str, Any], key: bytes, **header: Any) -> str:
    import hashlib
    import hmac

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_unusable_jwks_entries_are_skipped(
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = json.loads(RSAAlgorithm.to_jwk(rsa_key))
    jwks = write_jwks(
        tmp_path / "jwks.json",
        rsa_jwk(rsa_key, "good"),
        {k: v for k, v in rsa_jwk(rsa_key, "x").items() if k != "kid"},
        rsa_jwk(rsa_key, "hs", alg="HS256"),
        rsa_jwk(rsa_key, "enc", use="enc"),
        {**private, "kid": "private"},
        rsa_jwk(small, "small"),
        {"kty": "oct", "k": b64(SECRET.encode()), "kid": "oct"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"},
        {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "broken"},
        rsa_jwk(rsa_key, "good"),  # a duplicate kid
        "not an object",
    )
    with caplog.at_level(logging.WARNING, logger="querybus.identity"):
        v = verifier(jwks_file=jwks)
    assert v.key_ids == {"good"}
    assert len(caplog.records) == 10
    text = caplog.text
    # Never any key material in the log.
    for secret_part in (private["d"], private["n"][:40], b64(SECRET.encode())):
        assert secret_part not in text
    assert "private key material" in text
    assert "at least 2048 bits" in text


def test_unreadable_jwks_at_start_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No such file"):
        verifier(jwks_file=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": "secret-looking-content"}')
    with pytest.raises(ConfigurationError, match="not a JWKS document") as info:
        verifier(jwks_file=bad)
    assert "secret-looking-content" not in str(info.value)
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        verifier(jwks_file=bad)


def test_jwks_rotation_without_restart(
    tmp_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    rsa_key2: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    path = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"))
    v = verifier(clock, jwks_file=path, jwks_reload=1.0)
    old = rs(claims(), rsa_key, kid="r1")
    new = rs(claims(sub="new"), rsa_key2, kid="r2")
    assert v.verify(old).role == "app_user"
    with pytest.raises(AuthenticationError, match="not a known key"):
        v.verify(new)

    # A kid added: accepted once the reload interval has passed, not before.
    write_jwks(path, rsa_jwk(rsa_key, "r1"), rsa_jwk(rsa_key2, "r2"))
    clock.now += 0.5
    with pytest.raises(AuthenticationError, match="not a known key"):
        v.verify(new)
    clock.now += 0.5
    assert v.verify(new).subject == "new"
    assert v.key_ids == {"r1", "r2"}

    # A kid removed: refused, even though the token was verified (and cached) before.
    write_jwks(path, rsa_jwk(rsa_key2, "r2"), ed_jwk(ed_key, "e1"))
    clock.now += 1
    with pytest.raises(AuthenticationError, match="not a known key"):
        v.verify(old)
    assert v.verify(new).subject == "new"

    # A broken file keeps the last good key set, with one warning (not one per check).
    with caplog.at_level(logging.WARNING, logger="querybus.identity"):
        for content in ("{broken", '{"keys": 1}'):
            path.write_text(content)
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            for _ in range(3):
                clock.now += 1
                assert v.verify(new).subject == "new"
        path.unlink()
        for _ in range(3):
            clock.now += 1
            assert v.verify(ed(claims(), ed_key)).role == "app_user"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3, warnings
    assert "not valid JSON" in warnings[0]
    assert "keeping the 2 key(s)" in warnings[0]
    assert "not a JWKS document" in warnings[1]
    assert "cannot be read" in warnings[2]
    assert v.key_ids == {"r2", "e1"}

    # Fixed again: picked up.
    write_jwks(path, rsa_jwk(rsa_key, "r1"))
    clock.now += 1
    assert v.verify(old).role == "app_user"
    with pytest.raises(AuthenticationError, match="not a known key"):
        v.verify(new)


# -- the cache of verified tokens --------------------------------------------------------


def test_cache_pays_the_signature_once_and_rechecks_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    v = verifier(clock, leeway=0)
    calls: list[str] = []
    real = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("decode")
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    token = hs(claims(exp=NOW + 10))
    first = v.verify(token)
    assert v.verify(token) is first
    assert v.verify(token) is first
    assert calls == ["decode"]
    clock.now = NOW + 11
    with pytest.raises(TokenExpiredError):
        v.verify(token)
    with pytest.raises(TokenExpiredError):
        v.verify(token)
    # Failures are never cached: each bad token is checked again.
    bad = hs(claims(), secret="y" * 40)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            v.verify(bad)
    assert len(calls) == 4  # two expired checks: the entry was dropped after the first


def test_cache_is_bounded_lru() -> None:
    v = verifier(cache_size=2)
    tokens = [hs(claims(sub=f"s{i}")) for i in range(3)]
    for t in tokens:
        v.verify(t)
    assert len(v._cache) == 2
    v.verify(tokens[1])  # hit: now the most recent
    v.verify(tokens[0])  # miss: evicts tokens[2]
    assert v.verify(tokens[1]).subject == "s1"
    assert len(v._cache) == 2


# -- secrets never leak ---------------------------------------------------------------------


def test_no_error_message_contains_the_token_or_the_secret(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "r1"))
    v = verifier(jwks_file=jwks, secret=SECRET, audience="qb", issuer="me")
    clock = Clock(NOW + 10_000)
    late = verifier(clock, secret=SECRET)
    tokens = [
        hs(claims()),  # no aud
        hs(claims(aud="qb", iss="me", role="postgres")),
        hs(claims(aud="qb", iss="me"), secret="z" * 40),
        rs(claims(aud="qb", iss="me"), rsa_key, kid="other"),
        jwt.encode(claims(), "", algorithm="none"),
    ]
    for token in tokens:
        with pytest.raises((AuthenticationError, PermissionDeniedError)) as info:
            v.verify(token)
        text = f"{info.value} {info.value!r}"
        for part in (token, *token.split(".")[1:], SECRET):
            assert not part or part not in text
    with pytest.raises(TokenExpiredError) as expired:
        late.verify(hs(claims()))
    assert hs(claims()) not in str(expired.value)


# -- querybus token ------------------------------------------------------------------------------


def _token_cli() -> Any:
    import typer

    from querybus.cli.token import token

    one = typer.Typer()
    one.command()(token)
    return one


def test_cli_token_mints_a_verifiable_token() -> None:
    from typer.testing import CliRunner

    args = ["--role", "app_user", "--sub", "dev", "--ttl", "60", "--aud", "qb", "--iss", "me"]
    args += ["--claim", "tenant=42", "--claim", "name=bob", "--claim", "tags=[1,2]"]
    result = CliRunner().invoke(_token_cli(), args, env={"QUERYBUS_JWT_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    minted = result.output.strip()
    # Against the real clock: the CLI signs with the current time.
    v = TokenVerifier(IdentitySettings(secret=SECRET, roles=ROLES, audience="qb", issuer="me"))
    identity = v.verify(minted)
    assert (identity.subject, identity.role) == ("dev", "app_user")
    got = json.loads(identity.claims)
    assert (got["tenant"], got["name"], got["tags"]) == (42, "bob", [1, 2])
    assert got["exp"] - got["iat"] == 60


@pytest.mark.parametrize(
    ("args", "env", "match"),
    [
        (["--role", "app_user", "--sub", "s"], {"QUERYBUS_JWT_SECRET": ""}, "is not set"),
        (["--role", "app_user", "--sub", "s"], {"QUERYBUS_JWT_SECRET": "short"}, "32 bytes"),
        (["--role", "Bad-Role", "--sub", "s"], {"QUERYBUS_JWT_SECRET": SECRET}, "plain role"),
        (["--role", "a", "--sub", "s", "--claim", "x"], {"QUERYBUS_JWT_SECRET": SECRET}, "KEY="),
        (
            ["--role", "a", "--sub", "s", "--claim", "exp=1"],
            {"QUERYBUS_JWT_SECRET": SECRET},
            "--ttl",
        ),
    ],
)
def test_cli_token_refusals(args: list[str], env: dict[str, str], match: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(_token_cli(), args, env={"COLUMNS": "300", **env})
    assert result.exit_code == 1
    assert match in result.output
    assert SECRET not in result.output
