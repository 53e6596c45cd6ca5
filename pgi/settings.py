"""PGI settings.

Everything comes from the environment; unset, each setting falls back to an embedded default so
that `make run` works on a bare machine (SQLite, Celery over the filesystem transport, the bundled
Kafka-compatible broker). Tests and production set DATABASE_URL, REDIS_URL and
KAFKA_BOOTSTRAP_SERVERS to real services.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PGI_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
# The embedded default is for local runs only; docker-compose and production set their own.
LOCAL_SECRET_KEY = "pgi-insecure-local-development-key-change-me"  # `check --deploy` refuses it (pgi.E020)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", LOCAL_SECRET_KEY)
# During a rotation, the keys signed with before (comma-separated): sessions and password resets made
# under them stay valid until they are removed (docs/04-operations.md, "Rotating every secret").
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", "")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000")

INSTALLED_APPS = [
    "pgi.admin_site.PgiAdminConfig",  # the admin grouped for bank staff (pgi/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgi.merchants",
    "pgi.api",
    "payments",
    "refunds",
    "settlements",
    "gateways",
    "pgi.events",
    "payment_requests",
    "pgi.web",
    "pgi.webhooks",
    "pgi.staff",  # staff roles (pgi/staff/roles.py)
    "pgi.audit",  # the audit trail of staff actions (docs/04-operations.md#audit-trail)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the middleware that can fail a request (CommonMiddleware refuses a disallowed host), so
    # that their error responses under /v1 are also rewritten in the JSON error format.
    "pgi.api.middleware.ApiErrorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Django's cookie-then-session messages, built only for a request that uses them (pgi/web/messages.py).
MESSAGE_STORAGE = "pgi.web.messages.LazyFallbackStorage"

ROOT_URLCONF = "pgi.urls"
WSGI_APPLICATION = "pgi.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pgi.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves a handful of local processes at once: wait for the write lock
    # instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# A connection kept between requests (CONN_MAX_AGE), or waiting in the pool, may have been dropped
# meanwhile (a PostgreSQL restart or failover, pg_terminate_backend, an idle timeout): check it before
# use and open a new one rather than fail the request. With the pool this is psycopg_pool's check on
# every checkout; payments.services.calls asks again after each gateway call.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("PGI_DB_HEALTH_CHECKS", True)
# PostgreSQL plans a read PGI sends over and over (the GET by id, a list page) once per connection
# instead of every time: parameters bound by the server (psycopg's ServerBindingCursor), statements
# run outside a transaction prepared from their 5th run; never those in a transaction
# (pgi/prepared_statements.py says why). Planning was most of PostgreSQL's CPU for a GET by id
# (0.4 ms planning, 0.1 ms running; bench/README.md). Off for a pooler in transaction mode that
# does not carry prepared statements (PgBouncer before 1.21, or without max_prepared_statements):
# docs/scaling.md.
PGI_DB_PREPARED_STATEMENTS = env_bool("PGI_DB_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and PGI_DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
# Gateway calls must never run inside a transaction, so requests are not wrapped in one.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A process with many threads (gunicorn.conf.py sets this for the web workers) shares a pool of this
# many PostgreSQL connections (Django's psycopg pool) instead of holding one per thread; a thread
# gives its connection back while it waits for a gateway (payments.services.calls). 0: no pool.
PGI_DB_POOL_SIZE = int(os.environ.get("PGI_DB_POOL_SIZE", "0"))
if PGI_DB_POOL_SIZE > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, PGI_DB_POOL_SIZE),
        "max_size": PGI_DB_POOL_SIZE,
        "timeout": 10,  # seconds a thread waits for a free connection before its request fails
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "pgi.redis_cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Parallel test workers share one Redis: each keeps to its own keys.
            "KEY_PREFIX": os.environ.get("PGI_CACHE_PREFIX", "pgi") + os.environ.get("PYTEST_XDIST_WORKER", ""),
            # A Redis that hangs must not hang payments: the breaker and throttle fail open instead.
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
else:
    # Without Redis, every process of `make run` still shares one cache, as in production: the
    # breakers, the simulator's outage switch and the throttle must look the same from each. Not
    # LocMemCache (one per process); not Django's file or database caches either, whose add and incr
    # read then write in separate steps: the breaker's single probe and its failure count need them
    # atomic across processes. pgi/sqlite_cache.py runs them under SQLite's write lock.
    CACHES = {
        "default": {
            "BACKEND": "pgi.sqlite_cache.SQLiteCache",
            "LOCATION": str(VAR_DIR / "cache.sqlite3"),
            "KEY_PREFIX": os.environ.get("PGI_CACHE_PREFIX", "pgi"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates shown without an explicit format are ISO 8601 UTC, as everywhere else in PGI.
FORMAT_MODULE_PATH = ["pgi.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("PGI_MANIFEST_STATIC", True)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "admin:login"

# --- Web security: HTTPS, headers, login lockout (docs/04-operations.md#security) -----------
# One block, so that it merges apart from other sections: it adds its own apps and middleware.
INSTALLED_APPS += ["axes"]
# Right after SecurityMiddleware: every answer gets the policy, and every view sees the nonce
# (django-csp's middleware, the policy of the settings built once: pgi/web/csp.py).
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "pgi.web.csp.PolicyCachingCSPMiddleware")
# Outside the API error middleware, so that the errors it writes are not cached either.
MIDDLEWARE.insert(MIDDLEWARE.index("pgi.api.middleware.ApiErrorMiddleware"), "pgi.web.middleware.ApiNoStoreMiddleware")
# Before sessions, whose lookup in PostgreSQL fails on a NUL in the cookie.
MIDDLEWARE.insert(MIDDLEWARE.index("pgi.api.middleware.ApiErrorMiddleware") + 1, "pgi.web.middleware.RefuseNulMiddleware")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # turns a lockout into the lockout page

# PGI_HTTPS=true is the production switch: HTTPS only, behind a TLS-terminating proxy.
PGI_HTTPS = env_bool("PGI_HTTPS", False)
# How many reverse proxies in front of PGI append to X-Forwarded-For (0: clients connect directly,
# and neither X-Forwarded-For nor X-Forwarded-Proto is believed).
PGI_PROXY_COUNT = int(os.environ.get("PGI_PROXY_COUNT", "1" if PGI_HTTPS else "0"))
if PGI_PROXY_COUNT:
    # Only behind a proxy that sets this header on every request (and drops the client's own):
    # otherwise a client could claim HTTPS over plain HTTP.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if PGI_HTTPS:
    SECURE_SSL_REDIRECT = True
    # The platform's probe calls /health over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("PGI_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PGI_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("PGI_HSTS_PRELOAD", True)
# Django's defaults, stated because PGI relies on them.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Everything PGI serves comes from PGI: no other hosts, and inline scripts and styles only with
# the request's nonce. Redoc gets its own relaxation (pgi/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],  # the pages' inline SVG icon; Swagger UI's stylesheet icons
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Bearer token that shows /health's details to monitoring (staff sessions see them too).
PGI_HEALTH_TOKEN = os.environ.get("PGI_HEALTH_TOKEN", "")
# /health runs its checks at most this often per web process; callers in between get the last answer.
PGI_HEALTH_CACHE_SECONDS = float(os.environ.get("PGI_HEALTH_CACHE_SECONDS", "5"))

# Admin login lockout (django-axes): failures are counted per username and client address together,
# and per address across usernames (password spraying); both end after the cool-off.
AUTHENTICATION_BACKENDS = [
    "pgi.web.login_lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "pgi.web.login_lockout.LoginAttemptHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = int(os.environ.get("PGI_LOGIN_FAILURE_LIMIT", "5"))
PGI_LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("PGI_LOGIN_ADDRESS_FAILURE_LIMIT", "20"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("PGI_LOGIN_COOLOFF_MINUTES", "15")))
AXES_RESET_ON_SUCCESS = True
# A refused attempt during a lockout is not counted: the cool-off runs from the failure that locked,
# and a locked user retrying does not push the whole address (an office behind one NAT) over its limit.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "pgi.web.login_lockout.client_address"
AXES_LOCKOUT_CALLABLE = "pgi.web.views.login_locked_out"
AXES_VERBOSE = False

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["pgi.merchants.authentication.ApiKeyAuthentication"],
    # Every keyed view names its scope family (key_scope): pgi.api.permissions.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "pgi.api.permissions.HasRequiredScope",
    ],
    "DEFAULT_PARSER_CLASSES": ["pgi.api.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["pgi.api.renderers.DecimalJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pgi.api.negotiation.JsonContentNegotiation",
    "DEFAULT_THROTTLE_CLASSES": ["pgi.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "pgi.api.schema.ScopedAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "pgi.api.exception_handler.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_VERSIONING_CLASS": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Payment Gateway Integration API",
    "DESCRIPTION": (
        "API for integrating with payment gateways: process payments, validate payment details, "
        "retrieve payment status. Amounts are exact JSON numbers with the currency's minor-unit "
        "digits; errors use one format, `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.0.3",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVERS": [{"url": "/", "description": "this PGI instance"}],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SORT_OPERATIONS": "pgi.api.schema.payments_first",
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatus": "payments.models.PaymentStatus",
        "RefundStatus": "refunds.models.RefundStatus",
        "WebhookDeliveryStatus": "pgi.webhooks.models.DeliveryStatus",
        "SettlementPayoutStatus": "settlements.models.BatchStatus",
        "SettlementLineKind": "settlements.models.LineKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pgi.api.schema.add_payment_links",
        "pgi.api.schema.close_request_bodies",
        "pgi.api.schema.mark_unauthenticated_operations",
    ],
    "TAGS": [
        {"name": "Payments", "description": "For merchants and the bank's systems, with an API key."},
        {"name": "Refunds", "description": "Money given back on captured payments, with an API key."},
        {"name": "Settlements", "description": "What PGI pays each merchant, batch by batch, with an API key."},
        {"name": "Webhooks", "description": "Where PGI posts a merchant's events, signed, and how each delivery went."},
        {"name": "Gateways", "description": "For payment gateways only: their notifications, signed by them."},
    ],
}

# --- PGI ----------------------------------------------------------------------------------
PGI_PUBLIC_URL = os.environ.get("PGI_PUBLIC_URL", "http://127.0.0.1:8000")
# The base URL the guides at /docs/ show in their examples: PGI_PUBLIC_URL when it is set, else the
# scheme and host the reader's browser used.
PGI_DOCS_BASE_URL = os.environ.get("PGI_PUBLIC_URL", "")
# Sustained request rate per API key; bursts beyond it get 429 RATE_LIMITED.
PGI_API_RATE = os.environ.get("PGI_API_RATE", "6000/min")
# The largest request body (form fields included; uploaded files are not counted): 256 KiB, far
# above any payment or refund, and low enough that checking a body for card numbers (pgi/cards.py)
# stays well under a second. Beyond it: 413 PAYLOAD_TOO_LARGE.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("PGI_MAX_BODY_BYTES", str(256 * 1024)))
# The same for all of a merchant's keys together, where the merchant sets no limit of its own
# (Merchant.api_rate_limit); empty: no merchant-wide limit. A key's own limit is ApiKey.rate_limit.
PGI_MERCHANT_API_RATE = os.environ.get("PGI_MERCHANT_API_RATE", "")
# How long a rotated API key keeps working beside its successor (api_key_rotate).
PGI_API_KEY_ROTATION_GRACE_HOURS = int(os.environ.get("PGI_API_KEY_ROTATION_GRACE_HOURS", "24"))
PGI_IDEMPOTENCY_TTL_HOURS = int(os.environ.get("PGI_IDEMPOTENCY_TTL_HOURS", "24"))
# A request holding an Idempotency-Key renews its claim every third of this while it runs; after a
# crash the key is free to answer from what the request created (or to run again) this much later.
PGI_IDEMPOTENCY_LEASE_SECONDS = int(os.environ.get("PGI_IDEMPOTENCY_LEASE_SECONDS", "15"))
# The sandbox: `make run` and the test run set PGI_SANDBOX=true. There the simulator is on by
# default and, without PGI_SIMULATOR_WEBHOOK_SECRET, signs with a random secret kept in PGI_VAR_DIR
# (shared by web and worker). Outside it the simulator runs only with PGI_SIMULATOR_ENABLED=true and
# a secret of its own: `manage.py check --deploy` refuses anything weaker (docs/03-simulator.md).
PGI_SANDBOX = env_bool("PGI_SANDBOX", False)
PGI_SIMULATOR_ENABLED = env_bool("PGI_SIMULATOR_ENABLED", PGI_SANDBOX)


def _sandbox_secret(name: str) -> str:
    """A random secret created once in VAR_DIR, readable by its owner only; the first process to
    link its copy in place wins, so web and worker always share one."""
    import secrets
    import tempfile

    path = VAR_DIR / name
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=VAR_DIR)  # created with mode 0600
        with os.fdopen(descriptor, "w") as file:
            file.write(f"whsec_{secrets.token_hex(32)}\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


PGI_SIMULATOR_WEBHOOK_SECRET = os.environ.get("PGI_SIMULATOR_WEBHOOK_SECRET", "")
if PGI_SANDBOX and PGI_SIMULATOR_ENABLED and not PGI_SIMULATOR_WEBHOOK_SECRET:
    PGI_SIMULATOR_WEBHOOK_SECRET = _sandbox_secret("simulator-webhook-secret")
PGI_GATEWAYS: dict[str, dict] = {}
if PGI_SIMULATOR_ENABLED:
    PGI_GATEWAYS["simulator"] = {
        "class": "gateways.simulator.connector.SimulatorConnector",
        "webhook_secret": PGI_SIMULATOR_WEBHOOK_SECRET,
        # Seconds before the simulator sends the webhook of an asynchronous (…0202) payment.
        "webhook_delay": float(os.environ.get("PGI_SIMULATOR_WEBHOOK_DELAY", "2")),
        # Seconds the simulator waits before every answer, to rehearse slow gateways.
        "latency": float(os.environ.get("PGI_SIMULATOR_LATENCY", "0")),
        # Start with the simulator down (every call unavailable); `manage.py simulator outage` flips it.
        "outage": env_bool("PGI_SIMULATOR_OUTAGE", False),
        # The simulator's fee per settled line in its daily report: percent of the amount + fixed.
        "fee_percent": os.environ.get("PGI_SIMULATOR_FEE_PERCENT", "1.4"),
        "fee_fixed": os.environ.get("PGI_SIMULATOR_FEE_FIXED", "0.25"),
    }
# Stripe and Adyen join when their credentials are in the environment (docs/05, docs/06).
if os.environ.get("PGI_STRIPE_API_KEY"):
    PGI_GATEWAYS["stripe"] = {
        "class": "gateways.stripe.connector.StripeConnector",
        "api_key": os.environ["PGI_STRIPE_API_KEY"],
        "webhook_secret": os.environ.get("PGI_STRIPE_WEBHOOK_SECRET", ""),
        "api_base": os.environ.get("PGI_STRIPE_API_BASE") or None,
        "timeout": float(os.environ.get("PGI_STRIPE_TIMEOUT", "30")),
        "connect_timeout": float(os.environ.get("PGI_STRIPE_CONNECT_TIMEOUT", "5")),
        "proxy": os.environ.get("PGI_STRIPE_PROXY") or None,
    }
if os.environ.get("PGI_ADYEN_API_KEY"):
    PGI_GATEWAYS["adyen"] = {
        "class": "gateways.adyen.connector.AdyenConnector",
        "api_key": os.environ["PGI_ADYEN_API_KEY"],
        "merchant_account": os.environ["PGI_ADYEN_MERCHANT_ACCOUNT"],
        "hmac_key": os.environ.get("PGI_ADYEN_HMAC_KEY", ""),
        "environment": os.environ.get("PGI_ADYEN_ENVIRONMENT", "test"),
        "live_endpoint_prefix": os.environ.get("PGI_ADYEN_LIVE_ENDPOINT_PREFIX", ""),
        "checkout_url": os.environ.get("PGI_ADYEN_CHECKOUT_URL") or None,
        "webhook_username": os.environ.get("PGI_ADYEN_WEBHOOK_USERNAME", ""),
        "webhook_password": os.environ.get("PGI_ADYEN_WEBHOOK_PASSWORD", ""),
        "report_url": os.environ.get("PGI_ADYEN_REPORT_URL") or None,
        "report_username": os.environ.get("PGI_ADYEN_REPORT_USERNAME", ""),
        "report_password": os.environ.get("PGI_ADYEN_REPORT_PASSWORD", ""),
        "timeout": float(os.environ.get("PGI_ADYEN_TIMEOUT", "30")),
        "connect_timeout": float(os.environ.get("PGI_ADYEN_CONNECT_TIMEOUT", "5")),
    }
# Where a merchant without routes is sent: the simulator when it runs, else the first real gateway.
PGI_DEFAULT_GATEWAY = os.environ.get("PGI_DEFAULT_GATEWAY") or next(iter(PGI_GATEWAYS), "")
# How long an authorization (capture: false) may wait for its capture before the expiry job
# cancels it. Card authorizations usually hold for 7 days.
PGI_AUTHORIZATION_TTL_HOURS = int(os.environ.get("PGI_AUTHORIZATION_TTL_HOURS", "168"))
# Recovery of payments whose outcome is unknown (docs/07-routing-and-recovery.md).
PGI_RECOVERY = {
    "grace_seconds": int(os.environ.get("PGI_RECOVERY_GRACE_SECONDS", "60")),  # first look after
    "base_seconds": int(os.environ.get("PGI_RECOVERY_BASE_SECONDS", "60")),  # then 1, 2, 4 … minutes
    "max_backoff_seconds": int(os.environ.get("PGI_RECOVERY_MAX_BACKOFF_SECONDS", "3600")),
    "max_attempts": int(os.environ.get("PGI_RECOVERY_MAX_ATTEMPTS", "12")),  # then flagged for staff
    "batch_size": int(os.environ.get("PGI_RECOVERY_BATCH_SIZE", "100")),
    "lease_seconds": int(os.environ.get("PGI_RECOVERY_LEASE_SECONDS", "300")),
}
# The refund job (refunds.tasks.refunds_process, beat every minute): each run takes batches of
# batch_size due refunds until none is due or run_seconds have passed, so a large bulk file is sent
# at the pace of the gateway, not of one batch a minute. Backoff and tries are PGI_RECOVERY's.
PGI_REFUNDS = {
    "batch_size": int(os.environ.get("PGI_REFUND_BATCH_SIZE", "200")),
    "run_seconds": int(os.environ.get("PGI_REFUND_RUN_SECONDS", "50")),
}
# Settlement (docs/08-batch-processing.md): the daily cut-off (HH:MM in time_zone) that beat's
# `settle-daily` job is created with (staff change it in the admin: the job settles up to the time
# its schedule names), the days from cut-off to payout, and the bank's own account that payout files
# pay from (the debtor of pain.001: an example account in the sandbox only; unset, batches are held
# with NO_DEBTOR_ACCOUNT until it is set and their files are built again).
PGI_SETTLEMENT = {
    "cutoff_time": os.environ.get("PGI_SETTLEMENT_CUTOFF_TIME", "00:00"),
    "time_zone": os.environ.get("PGI_SETTLEMENT_TIME_ZONE", "UTC"),
    "payout_days": int(os.environ.get("PGI_SETTLEMENT_PAYOUT_DAYS", "1")),
    # How far back before the cut-off a run looks for what is not settled yet (`settle --full`: all).
    "lookback_days": int(os.environ.get("PGI_SETTLEMENT_LOOKBACK_DAYS", "31")),
    # The admin warns when the latest cut-off has no run this many minutes after it (a worker
    # killed mid-run leaves the job to the broker's redelivery, PGI_CELERY_VISIBILITY_TIMEOUT later).
    "late_minutes": int(os.environ.get("PGI_SETTLEMENT_LATE_MINUTES", "30")),
    "debtor_name": os.environ.get("PGI_SETTLEMENT_DEBTOR_NAME", "PGI Bank"),
    "debtor_iban": os.environ.get("PGI_SETTLEMENT_DEBTOR_IBAN", "DE89370400440532013000" if PGI_SANDBOX else ""),
    "debtor_bic": os.environ.get("PGI_SETTLEMENT_DEBTOR_BIC", "COBADEFFXXX" if PGI_SANDBOX else ""),
}
# Reconciliation (docs/08-batch-processing.md, "Reconciliation"): beat's `reconcile-daily-<gateway>`
# jobs are created at run_time in time_zone (staff change them in the admin) and reconcile the day
# lag_days before; the inbox job picks report files up from inbox_dir every inbox_seconds (moved to
# processed/ or failed/ beside it); an open exception first seen more than overdue_days ago is overdue.
PGI_RECONCILIATION = {
    "run_time": os.environ.get("PGI_RECONCILIATION_RUN_TIME", "06:00"),
    "time_zone": os.environ.get("PGI_RECONCILIATION_TIME_ZONE", "UTC"),
    "lag_days": int(os.environ.get("PGI_RECONCILIATION_LAG_DAYS", "1")),
    "inbox_dir": os.environ.get("PGI_RECONCILIATION_INBOX_DIR", str(VAR_DIR / "reconciliation" / "inbox")),
    "inbox_seconds": int(os.environ.get("PGI_RECONCILIATION_INBOX_SECONDS", "300")),
    "overdue_days": int(os.environ.get("PGI_RECONCILIATION_OVERDUE_DAYS", "3")),
    # A report line is matched by gateway reference to payments created up to this many days before its day.
    "lookback_days": int(os.environ.get("PGI_RECONCILIATION_LOOKBACK_DAYS", "31")),
    # Lines per COPY write on PostgreSQL and per executemany on SQLite.
    "chunk_lines": int(os.environ.get("PGI_RECONCILIATION_CHUNK_LINES", "5000")),
    # The largest report the finance UI's upload takes (a larger one goes to the inbox folder or
    # `manage.py reconcile --file`, which have no web worker timeout).
    "upload_max_bytes": int(os.environ.get("PGI_RECONCILIATION_UPLOAD_MAX_BYTES", str(20 * 1024 * 1024))),
}
# Circuit breaker per gateway, shared between processes through the cache (Redis, or var/cache.sqlite3).
PGI_CIRCUIT_BREAKER = {
    "failure_threshold": int(os.environ.get("PGI_BREAKER_FAILURES", "5")),
    "window_seconds": int(os.environ.get("PGI_BREAKER_WINDOW_SECONDS", "60")),
    "open_seconds": int(os.environ.get("PGI_BREAKER_OPEN_SECONDS", "30")),
}
PGI_CIRCUIT_BREAKER_OVERRIDES: dict[str, dict] = {}
# Webhook timestamps older or newer than this are refused (replay protection).
PGI_WEBHOOK_TOLERANCE_SECONDS = int(os.environ.get("PGI_WEBHOOK_TOLERANCE_SECONDS", "300"))

# Merchant webhooks (docs/10-webhooks.md): the fan-out from the outbox and the sending, both Celery
# tasks on beat. A failed attempt is retried after each of retry_schedule's seconds in turn (with
# ±jitter), spanning over 24 hours; after the last, the delivery has failed. URLs that resolve to
# loopback, private, link-local or other non-public addresses are refused unless
# allow_private_urls (default: in the sandbox only, so `make run` and tests can post to 127.0.0.1).
PGI_WEBHOOKS = {
    "allow_private_urls": env_bool("PGI_WEBHOOKS_ALLOW_PRIVATE_URLS", PGI_SANDBOX),
    "retry_schedule": [int(x) for x in env_list("PGI_WEBHOOKS_RETRY_SCHEDULE", "60,300,1800,7200,18000,36000,36000")],
    "jitter": float(os.environ.get("PGI_WEBHOOKS_JITTER", "0.1")),
    "connect_timeout": float(os.environ.get("PGI_WEBHOOKS_CONNECT_TIMEOUT", "3")),
    "read_timeout": float(os.environ.get("PGI_WEBHOOKS_READ_TIMEOUT", "10")),
    "response_body_limit": int(os.environ.get("PGI_WEBHOOKS_RESPONSE_BODY_LIMIT", "2048")),
    "rotation_hours": int(os.environ.get("PGI_WEBHOOKS_ROTATION_HOURS", "24")),
    "fanout_batch_size": int(os.environ.get("PGI_WEBHOOKS_FANOUT_BATCH_SIZE", "500")),
    "send_concurrency": int(os.environ.get("PGI_WEBHOOKS_SEND_CONCURRENCY", "8")),  # attempts in flight per worker
    "endpoint_concurrency": int(os.environ.get("PGI_WEBHOOKS_ENDPOINT_CONCURRENCY", "2")),  # of those, per endpoint
    "run_seconds": int(os.environ.get("PGI_WEBHOOKS_RUN_SECONDS", "8")),
    "max_endpoints_per_merchant": int(os.environ.get("PGI_WEBHOOKS_MAX_ENDPOINTS", "16")),
    "retention_days": int(os.environ.get("PGI_WEBHOOKS_RETENTION_DAYS", "30")),  # of finished deliveries
}

# Retention (docs/04-operations.md, "Card data and retention"): what the prune jobs on beat delete,
# batch_size rows per DELETE, each its own transaction. Idempotency records go after
# PGI_IDEMPOTENCY_TTL_HOURS, sent outbox rows after PGI_EVENTS retention_days, finished webhook
# deliveries with their attempts after PGI_WEBHOOKS retention_days; gateway notifications (kept for
# the dedupe of a gateway's retries and for reconciliation) after gateway_notifications_days.
# Payments, refunds, settlements and the audit trail are kept.
PGI_RETENTION = {
    "batch_size": int(os.environ.get("PGI_RETENTION_BATCH_SIZE", "1000")),
    "gateway_notifications_days": int(os.environ.get("PGI_GATEWAY_NOTIFICATIONS_RETENTION_DAYS", "90")),
}

KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
# Events (docs/09-events.md): the topics the outbox rows go to, and how long sent rows are kept
# before events_prune (beat, hourly) deletes them, prune_batch_size rows per DELETE. The relay
# (`manage.py relay_events`) publishes to KAFKA_BOOTSTRAP_SERVERS and creates a missing topic with
# these partitions and replication factor.
PGI_EVENTS = {
    "payment_events_topic": os.environ.get("PGI_EVENTS_PAYMENT_TOPIC", "payment-events"),
    "notifications_topic": os.environ.get("PGI_EVENTS_NOTIFICATIONS_TOPIC", "payment-notifications"),
    "retention_days": int(os.environ.get("PGI_EVENTS_RETENTION_DAYS", "7")),
    "prune_batch_size": int(os.environ.get("PGI_EVENTS_PRUNE_BATCH_SIZE", PGI_RETENTION["batch_size"])),
    "batch_size": int(os.environ.get("PGI_EVENTS_BATCH_SIZE", "2000")),
    "idle_seconds": float(os.environ.get("PGI_EVENTS_IDLE_SECONDS", "0.5")),
    "lock_poll_seconds": float(os.environ.get("PGI_EVENTS_LOCK_POLL_SECONDS", "1")),
    "delivery_timeout_seconds": float(os.environ.get("PGI_EVENTS_DELIVERY_TIMEOUT_SECONDS", "30")),
    "topic_partitions": int(os.environ.get("PGI_EVENTS_TOPIC_PARTITIONS", "3")),
    "topic_replication_factor": int(os.environ.get("PGI_EVENTS_TOPIC_REPLICATION", "1")),
    # The admin shows the relay's lag in red when the oldest unsent event is older than this.
    "lag_warn_seconds": float(os.environ.get("PGI_EVENTS_LAG_WARN_SECONDS", "60")),
}
# Payment requests (docs/09-events.md, "Payment requests"): `manage.py consume_payment_requests`
# reads `topic` in consumer group `group_id`, acting as the platform API key named `api_key_name`,
# and sends what it cannot process to `dlq_topic`. Topics it creates take PGI_EVENTS' partitions.
PGI_PAYMENT_REQUESTS = {
    "topic": os.environ.get("PGI_PAYMENT_REQUESTS_TOPIC", "payment-requests"),
    "dlq_topic": os.environ.get("PGI_PAYMENT_REQUESTS_DLQ_TOPIC", "payment-requests.dlq"),
    "group_id": os.environ.get("PGI_PAYMENT_REQUESTS_GROUP", "pgi-payment-requests"),
    "api_key_name": os.environ.get("PGI_PAYMENT_REQUESTS_KEY_NAME", "payment-requests"),
    # librdkafka's default (45 s) makes a group join take ~20 s; a dead consumer's partitions move on after this.
    "session_timeout_ms": int(os.environ.get("PGI_PAYMENT_REQUESTS_SESSION_TIMEOUT_MS", "10000")),
    # An unexpected error is retried this many times before the message goes to the DLQ; a database
    # or broker outage is retried for as long as it lasts, each wait at most retry_max_seconds.
    "max_attempts": int(os.environ.get("PGI_PAYMENT_REQUESTS_MAX_ATTEMPTS", "5")),
    "retry_max_seconds": float(os.environ.get("PGI_PAYMENT_REQUESTS_RETRY_MAX_SECONDS", "30")),
}

# --- Celery -------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
    # Tasks are acknowledged after they run (acks_late): a worker killed mid-task leaves its message
    # unacknowledged, and Redis hands it to another worker after this many seconds (kombu's default
    # is an hour). Every PGI task is safe to run twice, and none runs or waits (countdown) this long.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        "visibility_timeout": int(os.environ.get("PGI_CELERY_VISIBILITY_TIMEOUT", "300")),
    }
else:
    # Embedded transport: messages are files in var/celery, shared by the local processes.
    _celery_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    # The transport ignores the host; naming one keeps kombu from warning on every connection.
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        # Broadcast (worker control) messages; kombu's default is ./control in the working directory.
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
# Parallel test workers share one Redis: each sends to and consumes its own queue.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PGI_CELERY_QUEUE", "pgi") + os.environ.get("PYTEST_XDIST_WORKER", "")
CELERY_TASK_IGNORE_RESULT = True
# Retry the broker at start as on any later loss (Celery's default), said explicitly: Celery 6 stops
# deriving it from broker_connection_retry, and warns about that on every start until it is set.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Seeded into django-celery-beat's tables on start; staff edit them in the admin afterwards.
# `settle-daily` is not here: a crontab seeded on every start would undo a staff edit of its time,
# which is the settlement cut-off; settlements' migration 0002 creates it once from PGI_SETTLEMENT.
CELERY_BEAT_SCHEDULE = {
    "purge-expired-idempotency-keys": {
        "task": "pgi.api.tasks.idempotency_keys_purge",
        "schedule": 3600.0,
    },
    "recover-payments": {"task": "payments.tasks.payments_recover", "schedule": 60.0},
    "expire-authorizations": {"task": "payments.tasks.authorizations_expire", "schedule": 300.0},
    "process-refunds": {"task": "refunds.tasks.refunds_process", "schedule": 60.0},
    "prune-sent-events": {"task": "pgi.events.tasks.events_prune", "schedule": 3600.0},
    "fan-out-webhooks": {"task": "pgi.webhooks.tasks.webhooks_fan_out", "schedule": 5.0},
    "send-webhooks": {"task": "pgi.webhooks.tasks.webhooks_send", "schedule": 10.0},
    "prune-webhook-deliveries": {"task": "pgi.webhooks.tasks.webhooks_prune", "schedule": 3600.0},
    "prune-gateway-notifications": {"task": "gateways.tasks.gateway_notifications_prune", "schedule": 3600.0},
    # The finance dashboard's daily payment figures (settlements/finance/services.py).
    "finance-daily-figures": {"task": "settlements.finance.tasks.finance_daily_figures_refresh", "schedule": 3600.0},
}

# PGI_LOG_FORMAT: `json` (the default: one JSON object per line, for the log pipeline) or `text`
# (`make run` sets it: lines a person reads). Both carry the request id (pgi/observability/logs.py).
PGI_LOG_FORMAT = os.environ.get("PGI_LOG_FORMAT", "json").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(request_id_tag)s %(message)s"},
        "json": {"()": "pgi.observability.logs.PgiJsonFormatter"},
    },
    "filters": {
        # A client's mistake (4xx) is not the service's: INFO, not Django's WARNING. 5xx stay ERROR.
        "client_errors_at_info": {"()": "pgi.log_filters.ClientErrorsAtInfo"},
        "request_id": {"()": "pgi.observability.logs.RequestIdFilter"},
        # Card numbers (pgi/cards.py) are masked in every line written, whoever logged them.
        "redact_card_numbers": {"()": "pgi.log_filters.RedactCardNumbers"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if PGI_LOG_FORMAT == "text" else "json",
            "filters": ["request_id", "redact_card_numbers"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("PGI_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"filters": ["client_errors_at_info"]},
        "django.db.backends": {"level": "WARNING"},
        # The gateway SDKs log every request at INFO; PGI records its own gateway attempts.
        "stripe": {"level": "WARNING"},
        "Adyen": {"level": "WARNING"},
    },
}

# --- Observability: request id, /metrics, /healthz, /readyz (docs/04-operations.md) ---------
# One block, so that it merges apart from other sections: it adds its own apps and middleware.
INSTALLED_APPS += ["pgi.observability", "monitoring"]
# First: the request id is set, and the clock started, before any other middleware runs. Then the
# probes and /metrics, answered before the host check and the HTTPS redirect (monitoring/middleware.py).
MIDDLEWARE[:0] = [
    "pgi.observability.middleware.RequestObservabilityMiddleware",
    "monitoring.middleware.ProbesMiddleware",
]
# Bearer token that /metrics requires; unset, /metrics answers 404 (it does not exist).
PGI_METRICS_TOKEN = os.environ.get("PGI_METRICS_TOKEN", "")
# A web process reads the database and the cache for /metrics at most this often; scrapes in between
# get the last figures.
PGI_METRICS_CACHE_SECONDS = float(os.environ.get("PGI_METRICS_CACHE_SECONDS", "10"))
# What /readyz checks (pgi/web/health.py CHECKS' names); any failing one answers 503.
PGI_READY_CHECKS = env_list("PGI_READY_CHECKS", "database,cache,celeryBroker")
