"""What psycopg really sends to end and begin transactions."""

from contextlib import contextmanager
from unittest import mock


@contextmanager
def commands_sent():
    """The transaction commands (BEGIN, COMMIT, ROLLBACK) psycopg really sends, in order. Django
    logs a BEGIN and a COMMIT for every atomic block whether or not psycopg sends them."""
    from psycopg._connection_base import BaseConnection

    sent: list[str] = []
    original = BaseConnection._exec_command

    def recording(self, command, *args, **kwargs):
        text = command.decode() if isinstance(command, bytes) else str(command)
        sent.append(text.split()[0].upper())
        return original(self, command, *args, **kwargs)

    with mock.patch.object(BaseConnection, "_exec_command", recording):
        yield sent
