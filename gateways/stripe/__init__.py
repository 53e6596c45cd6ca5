"""Stripe behind PGI's connector interface (docs/05-gateway-stripe.md).

connector: the calls, through the official SDK; webhooks: signature check and events; report: the
balance transactions of a day; results: Stripe's objects as PGI's results; codes and amounts:
Stripe's decline codes and minor units. settings.PGI_GATEWAYS names `connector.StripeConnector`.
"""
