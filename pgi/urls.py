from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from pgi.web import views as web_views

api_v1 = [
    path("", include("payments.urls")),
    path("", include("gateways.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("schema/swagger", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("schema/redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

urlpatterns = [
    path("v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("health", web_views.health, name="health"),
    path("docs/", include("pgi.web.urls")),
    path("", RedirectView.as_view(pattern_name="docs-index", permanent=False)),
]
