"""/finance/: the finance web UI (namespace `finance`)."""

from django.urls import path

from .views import auth, dashboard, reconciliation, settlements

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
    path("reconciliation/", reconciliation.run_list, name="runs"),
    path("reconciliation/export.csv", reconciliation.run_list_export, name="runs-export"),
    path("reconciliation/runs/<int:run_id>/", reconciliation.run_detail, name="run"),
    path("reconciliation/runs/<int:run_id>/exceptions.csv", reconciliation.exception_list_export, name="run-exceptions-export"),
    path("reconciliation/exceptions/", reconciliation.exception_list, name="exceptions"),
    path("reconciliation/exceptions/export.csv", reconciliation.exception_list_export, name="exceptions-export"),
    path("reconciliation/exceptions/resolve", reconciliation.exceptions_resolve, name="exceptions-resolve"),
    path("reconciliation/upload", reconciliation.report_upload, name="report-upload"),
    path("reconciliation/reports/<int:report_id>", reconciliation.report_download, name="report"),
]
