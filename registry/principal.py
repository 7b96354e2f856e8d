"""The caller of a use case: a token's identity, role and namespace scope.

A plain value with no database behind it, so every layer (catalog included) can check it;
tokens and their storage are ``registry.access``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from registry.errors import Forbidden, NotFound

ROLES = ("reader", "writer", "maintainer", "admin")


@dataclass(frozen=True)
class Principal:
    """The caller: a token's identity, role and namespace scope (None = all namespaces)."""

    name: str
    role: str
    namespaces: frozenset[str] | None = None
    token_id: int | None = None
    # Where this token's reads are served from when a request names no region.
    default_region: str | None = None
    # When the token stops working (timezone-aware UTC; None: never). Authentication
    # refuses an expired token; a cache of principals checks it again at each use.
    expires_at: datetime | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def require(self, role: str) -> None:
        if not self.can(role):
            raise Forbidden(f"this needs the {role} role; the token {self.name!r} is a {self.role}")

    def require_namespace(self, namespace: str, what: str = "adapter") -> None:
        if not self.sees(namespace):
            raise NotFound(f"{what} not found")

    def covers(self, namespaces: Iterable[str] | None) -> bool:
        """True when a thing scoped to ``namespaces`` (None: every namespace) lies wholly
        within this principal's scope."""
        if self.namespaces is None:
            return True
        wanted = set(namespaces or ())
        return bool(wanted) and wanted <= self.namespaces

    def require_covers(self, namespaces: Iterable[str] | None, what: str) -> None:
        """Forbidden unless ``covers``: for administration, where the caller names the scope."""
        if not self.covers(namespaces):
            mine = ", ".join(sorted(self.namespaces or ()))
            raise Forbidden(f"{what} must stay within this token's namespaces ({mine})")

    def require_unscoped(self, what: str) -> None:
        """Forbidden for a namespace-scoped token: ``what`` is shared by every namespace."""
        if self.namespaces is not None:
            raise Forbidden(f"{what} is shared by every namespace; it needs an unscoped token")


# The caller when the server runs open (embedded mode on loopback).
OPEN_ACCESS = Principal(name="local", role="admin")
