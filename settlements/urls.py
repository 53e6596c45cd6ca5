from django.urls import path

from . import apis

urlpatterns = [
    path("settlements", apis.SettlementCollectionApi.as_view(), name="settlements"),
    path("settlements/<str:settlement_id>", apis.SettlementDetailApi.as_view(), name="settlement-detail"),
    path("settlements/<str:settlement_id>/lines", apis.SettlementLinesApi.as_view(), name="settlement-lines"),
]
