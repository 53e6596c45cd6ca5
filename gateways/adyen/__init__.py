"""Adyen behind PGI's connector interface (docs/06-gateway-adyen.md).

connector: the Checkout API calls, through the official SDK; webhooks: standard HMAC-signed
notifications; report: the Payments Accounting Report; codes and amounts: refusal reasons and
minor units. settings.PGI_GATEWAYS names `connector.AdyenConnector`.
"""
