"""`manage.py simulator`: Django finds commands here; the command lives with the simulator
(gateways/simulator/command.py)."""

from gateways.simulator.command import Command  # noqa: F401
