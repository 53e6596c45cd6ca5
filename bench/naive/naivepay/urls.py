from django.urls import path

from .views import PaymentDetail, PaymentList

urlpatterns = [
    path("v1/payments", PaymentList.as_view()),
    path("v1/payments/<int:pk>", PaymentDetail.as_view()),
]
