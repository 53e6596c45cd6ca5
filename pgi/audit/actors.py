"""Who acts and from where: a staff user in the admin or the finance UI, or a person running a
management command on a host."""

import getpass
import ipaddress
import os
import socket
from dataclasses import dataclass

from pgi.web.login_lockout import client_address


@dataclass(frozen=True)
class Actor:
    username: str
    via: str  # "admin", "finance", "command:<name>"
    user_id: int | None = None
    source_ip: str | None = None

    @classmethod
    def of_request(cls, request, *, via: str) -> "Actor":
        """The signed-in user, at the client address the login lockout uses too (PGI_PROXY_COUNT)."""
        user = request.user
        return cls(username=user.get_username(), via=via, user_id=user.pk, source_ip=_address(client_address(request)))

    @classmethod
    def of_command(cls, name: str) -> "Actor":
        """The OS user running `manage.py <name>`, and the host it runs on."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no name for the uid (a container's arbitrary user)
            who = f"uid {os.getuid()}"
        return cls(username=f"{who}@{socket.gethostname()}", via=f"command:{name}")


def _address(value: str | None) -> str | None:
    """An address the column takes, or None: a malformed X-Forwarded-For must not fail the change."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
