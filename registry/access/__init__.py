"""Who may do what: API tokens, roles and namespace scopes.

Roles are ordered: a reader pulls; a writer also pushes and records evals; a maintainer
also promotes and moves aliases; an admin also manages tokens, policies and webhooks.
A token scoped to namespaces sees nothing outside them: callers turn "not allowed to see"
into NotFound, never Forbidden, so a client's adapters do not leak their existence.

Administration stays inside the scope too: a scoped admin creates, lists and revokes only
tokens whose own scope lies within its namespaces (never an unscoped one), and manages only
webhooks of its namespaces. Asking for more is 403 ``forbidden``, answered the same whether
the token or webhook named exists or not, so ids are no oracle. Shared things (base models)
are changed only by unscoped tokens. A merge job belongs to every namespace it reads or
writes: a scoped viewer sees it only when its scope covers all of them.

Modules: ``tokens`` (create, list, revoke, authenticate), ``scopes`` (webhook and job
visibility). The caller itself, ``Principal``, lives in ``registry.principal`` (below
catalog/, which checks it) and is re-exported here.
"""

from registry.access.scopes import require_webhook_scope, visible_jobs
from registry.access.tokens import (
    TOKEN_PREFIX,
    TokenInfo,
    authenticate,
    check_role,
    create_token,
    list_tokens,
    revoke_token,
)
from registry.principal import OPEN_ACCESS, ROLES, Principal

__all__ = [
    "OPEN_ACCESS",
    "ROLES",
    "TOKEN_PREFIX",
    "Principal",
    "TokenInfo",
    "authenticate",
    "check_role",
    "create_token",
    "list_tokens",
    "require_webhook_scope",
    "revoke_token",
    "visible_jobs",
]
