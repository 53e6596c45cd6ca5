from django.urls import path

from . import apis

urlpatterns = [
    path("webhook-endpoints", apis.WebhookEndpointCollectionApi.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<str:endpoint_id>", apis.WebhookEndpointDetailApi.as_view(), name="webhook-endpoint-detail"),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret",
        apis.WebhookEndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/deliveries",
        apis.WebhookEndpointDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path("webhook-deliveries/<str:delivery_id>", apis.WebhookDeliveryDetailApi.as_view(), name="webhook-delivery-detail"),
    path(
        "webhook-deliveries/<str:delivery_id>/redeliver",
        apis.WebhookDeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
