"""PGI's staff roles: each a Django group with exactly these permissions, and nothing else.

The one place the roles are defined. Migrations create the groups and every `migrate` (post_migrate)
brings them back to these lists (services.role_groups_sync): a permission added to a group by hand
is taken away again, and a codename whose app is not installed yet is skipped. Superusers hold no
role: they are for break-glass only (docs/04-operations.md#staff-roles).

Imports no domain app: the codenames are strings.
"""

from dataclasses import dataclass

# Whole account identifiers (a payment's fromAccount, a merchant's settlement IBAN, a batch's payee
# IBAN, payout files); without it the admin and the finance UI show the last four characters.
VIEW_FULL_ACCOUNT = "payments.view_full_account"


@dataclass(frozen=True)
class Role:
    name: str  # the group's name
    job: str  # one line for `grant_role --list` and the docs
    permissions: tuple[str, ...]  # "app_label.codename"


def _model(app_label: str, model: str, *actions: str) -> tuple[str, ...]:
    return tuple(f"{app_label}.{action}_{model}" for action in actions)


OPERATIONS = Role(
    "Operations",
    "payments, refunds, gateways (status, breakers, routes), merchants and their webhooks; no API keys",
    (
        "payments.view_payment",
        VIEW_FULL_ACCOUNT,
        "payments.restart_recovery_payment",
        *_model("refunds", "refund", "view", "retry", "cancel", "restart"),
        *_model("refunds", "refundfile", "view", "upload"),
        "gateways.view_gatewaynotification",
        *_model("gateways", "gatewayroute", "view", "add", "change", "delete"),
        *_model("merchants", "merchant", "view", "add", "change"),
        *_model("merchants", "merchantcurrency", "view", "add", "change", "delete"),
        *_model("webhooks", "webhookendpoint", "view", "add", "change"),
        *_model("webhooks", "webhookdelivery", "view", "redeliver"),
    ),
)

FINANCE = Role(
    "Finance",
    "the finance UI, settlement (payouts, fee plans), reconciliation; payments and refunds read-only",
    (
        "settlements.use_finance_ui",
        *_model("settlements", "settlementbatch", "view", "mark_paid_out", "hold", "rebuild_payout_files"),
        "settlements.view_settlementline",
        "settlements.view_payoutfile",
        *_model("settlements", "feeplan", "view", "add", "change"),
        *_model("settlements", "feeplancurrency", "view", "add", "change", "delete"),
        *_model("settlements", "gatewayreport", "view", "add"),
        "settlements.view_reconciliationrun",
        *_model("settlements", "reconciliationexception", "view", "resolve"),
        "payments.view_payment",
        VIEW_FULL_ACCOUNT,
        "refunds.view_refund",
        "merchants.view_merchant",  # the merchant of a batch or a fee plan
    ),
)

SUPPORT = Role(
    "Support",
    "payments and refunds read-only, account identifiers masked",
    ("payments.view_payment", "refunds.view_refund"),
)

SECURITY = Role(
    "Security",
    "API keys, staff users and their roles, sign-in lockouts, the audit trail",
    (
        *_model("merchants", "apikey", "view", "add", "change"),
        *_model("auth", "user", "view", "add", "change"),
        "auth.view_group",  # roles are changed here, in code, not in the admin
        "audit.view_auditevent",
        "audit.export_auditevent",
        *_model("axes", "accessattempt", "view", "delete"),  # deleting one lifts a lockout
        "axes.view_accesslog",
        "axes.view_accessfailurelog",
    ),
)

ROLES: dict[str, Role] = {role.name: role for role in (OPERATIONS, FINANCE, SUPPORT, SECURITY)}
