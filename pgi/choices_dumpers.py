"""Choices (a status, a kind) sent to PostgreSQL by psycopg's dumpers for str, found at once.

A `models.TextChoices` member is a str subclass. psycopg finds a value's dumper by its exact class;
for a class it has no entry for, it walks the class's MRO, building each base's dotted name and
raising a KeyError on the way, on every statement (its per-cursor cache starts empty). A payment
sends about ten such members per POST (its status, an operation's kind and status, a history
line's source).

On each new connection (`connection_created`), every choices class gets its base type's dumpers,
text and binary, the one psycopg picks by default last: what the MRO walk would have found, so
the same text reaches PostgreSQL. tests/test_choices_dumpers.py checks both.
"""

from django.db import models
from django.db.backends.signals import connection_created


def choices_classes() -> list[type]:
    """Every loaded TextChoices and IntegerChoices class (the apps' models have been imported)."""
    found, todo = [], [models.TextChoices, models.IntegerChoices]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def register(adapters) -> None:
    """Give each choices class its base type's dumpers in `adapters` (a psycopg AdaptersMap)."""
    from psycopg.adapt import PyFormat

    for cls in choices_classes():
        base = str if issubclass(cls, str) else int
        default = adapters.get_dumper(base, PyFormat.AUTO)
        if adapters.get_dumper(cls, PyFormat.AUTO) is not default:
            continue  # a dumper of its own was registered for it: keep it
        for fmt in (PyFormat.TEXT, PyFormat.BINARY):
            dumper = adapters.get_dumper(base, fmt)
            if dumper is not default:
                adapters.register_dumper(cls, dumper)
        adapters.register_dumper(cls, default)  # registered last: the one psycopg picks by default


def _register(sender, connection, **kwargs) -> None:
    if connection.vendor == "postgresql":
        register(connection.connection.adapters)


def install() -> None:
    connection_created.connect(_register, dispatch_uid="pgi.choices_dumpers")
