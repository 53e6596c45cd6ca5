from django.urls import path

from . import apis

urlpatterns = [
    path("payments/<str:payment_id>/refunds", apis.PaymentRefundsApi.as_view(), name="payment-refunds"),
    path("refunds", apis.RefundCollectionApi.as_view(), name="refunds"),
    path("refunds/<str:refund_id>", apis.RefundDetailApi.as_view(), name="refund-detail"),
]
