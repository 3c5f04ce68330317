"""Caller identity: who sent a request, from its signed token (a JWT).

:class:`IdentitySettings` says what to accept; :class:`TokenVerifier` turns a
request's ``querybus-authorization`` header into an
:class:`~querybus.execution.Identity` (or a typed error). Only the adapter
side and the CLI import this package: a caller sends its token as is, and the
client install does not need PyJWT.
"""

from querybus.identity.settings import MIN_SECRET_BYTES, IdentitySettings, is_plain_role
from querybus.identity.tokens import MAX_TOKEN_LENGTH, TokenVerifier, claims_json, issue_token

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "IdentitySettings",
    "TokenVerifier",
    "claims_json",
    "is_plain_role",
    "issue_token",
]
