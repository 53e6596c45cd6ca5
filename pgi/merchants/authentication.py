from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .principals import Principal
from .scopes import SCOPES
from .selectors import api_key_get_unrevoked
from .services import api_key_touch

# The code of a key past its expires_at: told apart from a wrong key (the caller holds the whole
# secret, so nothing is given away) because its remedy differs: switch to the key that replaced it.
EXPIRED_CODE = "API_KEY_EXPIRED"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
        api_key = api_key_get_unrevoked(full_key=token.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or has been revoked.")
        if api_key.has_expired():
            raise exceptions.AuthenticationFailed(
                f"The API key expired at {api_key.expires_at.isoformat().replace('+00:00', 'Z')}. "
                "Use the key that replaced it, or ask the bank for a new one.",
                code=EXPIRED_CODE,
            )
        api_key_touch(api_key=api_key)
        return Principal(api_key=api_key), api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="pgi"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "pgi.merchants.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key issued by the bank: `Authorization: Bearer pgi_<prefix>_<secret>`. A key that is "
                "unknown, revoked or expired gets 401 (`UNAUTHENTICATED`; `API_KEY_EXPIRED` once past its "
                "expiry). Each key holds scopes; every operation names the one it needs, `<family>:read` to "
                "read and `<family>:write` to change anything, and a key without it gets 403 "
                "`INSUFFICIENT_SCOPE`. The scopes:\n\n"
                + "\n".join(f"- `{scope}`: {meaning}" for scope, meaning in SCOPES.items())
            ),
        }
