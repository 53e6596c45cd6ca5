"""API key scopes at the door: every keyed view names its scope family (`key_scope`), and a key
without the scope its request needs is refused with 403 INSUFFICIENT_SCOPE before the view runs."""

import logging

from rest_framework.permissions import BasePermission

from pgi.errors import ErrorDetail, PermissionDenied
from pgi.merchants.scopes import SCOPES, scope_for

logger = logging.getLogger(__name__)

INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"


def required_scope(view, method: str) -> str | None:
    """The scope a `method` request to `view` needs; None when the view names no family."""
    family = getattr(view, "key_scope", None)
    return scope_for(family, method) if family else None


class HasRequiredScope(BasePermission):
    """The key holds `<view.key_scope>:read` for GET, HEAD and OPTIONS, `:write` for any other method.

    Fails closed: a keyed view that names no family, or a family and method no scope exists for
    (`settlements:write`), refuses every key; tests/merchants/test_scopes.py fails for such a view
    first. No query: the scopes come with the cached key."""

    def has_permission(self, request, view):
        scope = required_scope(view, request.method)
        if scope is None or scope not in SCOPES:
            logger.error("%s names no known API key scope for %s (key_scope=%r)", type(view).__name__,
                         request.method, getattr(view, "key_scope", None))
        elif request.auth is not None and request.auth.has_scope(scope):
            return True
        held = ", ".join(request.auth.scopes) if request.auth is not None and request.auth.scopes else "none"
        raise PermissionDenied(
            f"This API key lacks the scope {scope or '(none defined)'} that this operation needs.",
            code=INSUFFICIENT_SCOPE,
            details=[ErrorDetail("scope", f"Needs {scope or '(none defined)'}; the key has: {held}.")],
        )
