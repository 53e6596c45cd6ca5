"""/finance/: the finance web UI (namespace `finance`)."""

from django.urls import path

from .views import auth, dashboard, settlements

app_name = "finance"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login", auth.FinanceLoginView.as_view(), name="login"),
    path("logout", auth.FinanceLogoutView.as_view(), name="logout"),
    path("export/<slug:table>.csv", dashboard.dashboard_export, name="dashboard-export"),
    path("settlements/", settlements.batch_list, name="batches"),
    path("settlements/export.csv", settlements.batch_list_export, name="batches-export"),
    path("settlements/<str:batch_id>/", settlements.batch_detail, name="batch"),
    path("settlements/<str:batch_id>/lines.csv", settlements.batch_lines_export, name="batch-lines-export"),
    path("settlements/<str:batch_id>/files/<slug:kind>", settlements.payout_file, name="payout-file"),
]
