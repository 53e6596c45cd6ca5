from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .principals import Principal
from .selectors import api_key_get_active
from .services import api_key_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
        api_key = api_key_get_active(full_key=token.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or has been revoked.")
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
            "description": "An API key issued by the bank: `Authorization: Bearer pgi_<prefix>_<secret>`.",
        }
