from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update, csp_replace
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from pgi.api.views import ApiIndexApi
from pgi.web import views as web_views

# Redoc styles its pages with styled-components, which writes <style> elements that carry no nonce,
# and runs its search index in a Web Worker made from a blob: URL. Its page alone allows both;
# scripts stay restricted to PGI's own files.
redoc_view = csp_update({"worker-src": [SELF, "blob:"]})(
    csp_replace({"style-src": [SELF, UNSAFE_INLINE]})(SpectacularRedocView.as_view(url_name="schema"))
)

api_v1 = [
    path("", ApiIndexApi.as_view(), name="api-index"),
    path("", include("payments.urls")),
    path("", include("refunds.urls")),
    path("", include("settlements.urls")),
    path("", include("pgi.webhooks.urls")),
    path("", include("gateways.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("schema/swagger", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("schema/redoc", redoc_view, name="redoc"),
]

urlpatterns = [
    path("v1", ApiIndexApi.as_view()),  # /v1 and /v1/ alike: both are the API's root
    path("v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("health", web_views.health, name="health"),
    path("docs/", include("pgi.web.urls")),
    path("finance/", include("settlements.finance.urls")),
    path("", RedirectView.as_view(pattern_name="docs-index", permanent=False)),
]
