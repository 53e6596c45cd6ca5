"""A naive DRF build of PGI's two payment endpoints: the reference bench/api_load.py --naive measures
PGI against, on the same machine, in the same run. No gateway, no history, no events, no idempotency,
no throttle, no lookup cache: one INSERT per POST, one SELECT per GET, behind DRF's generic views."""

import os

SECRET_KEY = "naive-bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "naivepay.urls"
WSGI_APPLICATION = "naivepay.wsgi.application"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "naivepay"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_pool = int(os.environ.get("PGI_DB_POOL_SIZE", "0"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("NAIVE_DB_NAME", "pgi_bench_naive"),
        "HOST": os.environ.get("NAIVE_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("NAIVE_DB_PORT", "5432"),
        "USER": os.environ.get("NAIVE_DB_USER", "postgres"),
        "OPTIONS": {"pool": {"min_size": 1, "max_size": _pool}} if _pool else {},
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["naivepay.auth.KeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
