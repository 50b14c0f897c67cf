"""Who may call what: route groups, bearer tokens with roles, the HTTP and gRPC checks.

Every route belongs to one group (``groups.py``); each group is open or needs a token
(``settings.auth.groups``). Tokens are kept as SHA-256 hashes (settings, or the shared
state every replica reads: ``shared_tokens.py``), compared in constant time, and carry
roles: the groups they may call (``tokens.py``). HTTP is checked by
``serving.middleware.auth``, which costs one dict lookup on an open route; gRPC by the
servicer adapter from the call's metadata. ``openapi.py`` declares the bearer scheme in
the OpenAPI schema. No module here imports FastAPI, Starlette or Ray.
"""

from serving.security.groups import GROUPS, GRPC_GROUPS, classify, group_of_path
from serving.security.tokens import (
    ANONYMOUS,
    TOKEN_ENV,
    Principal,
    actor_of,
    TokenStore,
    bearer_headers,
    client_token,
    hash_token,
    new_token,
)
from serving.security.shared_tokens import Authenticator, TokenBook, ensure_admin_token

__all__ = [
    "ANONYMOUS",
    "GROUPS",
    "GRPC_GROUPS",
    "TOKEN_ENV",
    "Authenticator",
    "Principal",
    "TokenBook",
    "TokenStore",
    "actor_of",
    "classify",
    "bearer_headers",
    "client_token",
    "ensure_admin_token",
    "group_of_path",
    "hash_token",
    "new_token",
]
