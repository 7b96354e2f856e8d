"""The routers' dependencies. Defined in ``registry.http_deps``, below the API and the
dashboard, which share them without importing each other."""

from registry.http_deps import (
    MAX_ID,
    Admin,
    CurrentUser,
    IdPath,
    Maintainer,
    NumberPath,
    Reader,
    RuntimeDep,
    Writer,
    accept_foreign_tokens,
    allow,
    bearer_token,
    get_principal,
    get_runtime,
)

__all__ = [
    "MAX_ID",
    "Admin",
    "CurrentUser",
    "IdPath",
    "Maintainer",
    "NumberPath",
    "Reader",
    "RuntimeDep",
    "Writer",
    "accept_foreign_tokens",
    "allow",
    "bearer_token",
    "get_principal",
    "get_runtime",
]
