from django.urls import path

from . import apis

urlpatterns = [
    path("payments", apis.PaymentCollectionApi.as_view(), name="payments"),
    path("payments/validate", apis.PaymentValidateApi.as_view(), name="payment-validate"),
    path("payments/<str:payment_id>", apis.PaymentDetailApi.as_view(), name="payment-detail"),
    path("payments/<str:payment_id>/status", apis.PaymentStatusApi.as_view(), name="payment-status"),
    path("payments/<str:payment_id>/capture", apis.PaymentCaptureApi.as_view(), name="payment-capture"),
    path("payments/<str:payment_id>/cancel", apis.PaymentCancelApi.as_view(), name="payment-cancel"),
]
