from django.urls import path

from . import apis

urlpatterns = [
    path("gateways/<str:code>/webhooks", apis.GatewayWebhookApi.as_view(), name="gateway-webhook"),
]
