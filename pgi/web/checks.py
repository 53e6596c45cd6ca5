"""Deploy checks of the project's own settings: a deployment that signs sessions with a key printed
in the source must not start."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def secret_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.SECRET_KEY == settings.LOCAL_SECRET_KEY:
        return [
            checks.Error(
                "DJANGO_SECRET_KEY is not set: sessions, CSRF tokens and password resets are signed with "
                "the key written in PGI's source.",
                hint="Set DJANGO_SECRET_KEY to a long random string (e.g. `openssl rand -hex 32`).",
                id="pgi.E020",
            )
        ]
    return []
