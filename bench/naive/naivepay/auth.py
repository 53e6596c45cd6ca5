from rest_framework import authentication, exceptions

from .models import ApiKey


class KeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`, one SELECT."""

    def authenticate(self, request):
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != "Bearer":
            return None
        found = ApiKey.objects.filter(key=key).first()
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid key.")
        return (found, key)
