"""The simulator gateway: the sandbox for merchants and the test double for PGI (docs/03-simulator.md).

connector: the calls, against the simulator's own ledger (models); codes: the test values of
`fromAccount` and the declines they give; webhooks: signed notifications, sent and read; report:
the daily settlement CSV; ledger: ledger rows as the gateway reports them; tasks, admin and command:
its Celery task, its admin pages and `manage.py simulator`. settings.PGI_GATEWAYS names
`connector.SimulatorConnector`.

This module imports nothing: gateways/models.py imports the models from this package while Django
loads the apps.
"""
