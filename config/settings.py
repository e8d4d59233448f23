"""
Switchboard settings: one module, everything from the environment.

Every variable is documented in `.env.example`. With no variables at all the
platform runs on its embedded default: SQLite under `var/`, an in-memory
channel layer, and Dramatiq worker threads inside the web server process.
`DJANGO_ENV=production` turns on the production rules: required secrets, no
debug, secure cookies, and JSON logs.

A bad value stops start-up with an ImproperlyConfigured error that names the
variable and never echoes its value (it may hold a password).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file() and not env.bool("SWITCHBOARD_IGNORE_DOTENV", default=False):
    # Values already in the environment win over the file.
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of: {', '.join(choices)}.")
    return value


def _url(name: str, schemes: tuple[str, ...], example: str) -> str | None:
    """Return the URL in `name`, or None when unset; refuse any other scheme or a missing host."""
    raw = env.str(name, default="").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes or (parts.scheme != "sqlite" and not parts.hostname):
        raise ImproperlyConfigured(f"{name} is not a valid URL: expected {example} (schemes: {', '.join(schemes)}).")
    return raw


# =============================================================================
# Environment
# =============================================================================
DJANGO_ENV = _choice("DJANGO_ENV", ("development", "production"), "development")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be false when DJANGO_ENV=production.")

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random string of at least 50 characters when DJANGO_ENV=production."
        )
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
else:
    # Development only: a fixed, clearly insecure key so sessions survive restarts.
    SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-switchboard-development-key-change-me")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# =============================================================================
# Applications
# =============================================================================
INSTALLED_APPS = [
    # First, so that its `runserver` (daphne's, plus the embedded worker) wins.
    "config.apps.SwitchboardConfig",
    "daphne",  # before staticfiles: its runserver serves HTTP and WebSockets
    "config.apps.SwitchboardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    # Third party
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "channels",
    "django_dramatiq",
    "dramatiq_crontab",
    "django_guid",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Switchboard
    "apps.users",
    "apps.agents",
    "apps.workflows",
    "apps.executions",
    "apps.billing",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.users.middleware.UserPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
SITE_ID = 1
AUTH_USER_MODEL = "users.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# =============================================================================
# Database
# =============================================================================
_database_url = _url(
    "DATABASE_URL",
    ("postgres", "postgresql", "pgsql", "sqlite"),
    "postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////absolute/path.sqlite3",
)
if PRODUCTION and not _database_url:
    raise ImproperlyConfigured("DATABASE_URL must be set when DJANGO_ENV=production.")
if _database_url:
    DATABASES = {"default": env.db_url_config(_database_url)}
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "switchboard.sqlite3"}}

_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
    if env.bool("DATABASE_POOL", default=True):
        # One pool per process (psycopg_pool): under ASGI each request runs in a thread of its
        # own, so per-thread persistent connections (CONN_MAX_AGE) pile up until PostgreSQL
        # refuses clients (make bench, B4). Size it to the threads that query at once: web
        # requests in flight, or a worker's --threads.
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
        _db["CONN_HEALTH_CHECKS"] = True
else:
    # Worker threads and the web server share one SQLite file: wait for the
    # writer lock instead of failing, and let readers run beside one writer.
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not ":memory:", so that a worker or server process started by a
    # test can open the same test database; one per test run, so runs can overlap.
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-switchboard-{os.getpid()}.sqlite3")}

# =============================================================================
# Redis: cache, channel layer and (unless DRAMATIQ_BROKER_URL says otherwise) broker
# =============================================================================
REDIS_URL = _url("REDIS_URL", ("redis", "rediss", "unix"), "redis://HOST:6379/0")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "switchboard",
            "OPTIONS": {
                "socket_connect_timeout": 5,
                "socket_timeout": 5,
                "pool_class": "config.cache.SharedConnectionPool",
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "switchboard"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Per process: correct only while one process serves everything (the embedded default).
    # A full channel drops a message; consumers read such a gap back from the database.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

# Billing (amounts in the database are integer micro-credits; settings here are in credits)
BILLING_MAX_MOVEMENT_CREDITS = env.int("BILLING_MAX_MOVEMENT_CREDITS", default=1_000_000)
# A model with no price is charged this per million tokens (in and out) and flagged for operators.
BILLING_FALLBACK_PER_MILLION = env.int("BILLING_FALLBACK_PER_MILLION", default=30)
# A run starts only while the balance holds at least this much (micro-credits; 0.01 credits).
BILLING_RUN_MINIMUM_MICRO = env.int("BILLING_RUN_MINIMUM_MICRO", default=10_000)
# Below this balance (micro-credits; 1 credit) the user gets one email and one in-app notice per crossing.
BILLING_LOW_BALANCE_MICRO = env.int("BILLING_LOW_BALANCE_MICRO", default=1_000_000)
# Credit packs sold through Stripe Checkout: id -> credits and price (smallest currency unit).
BILLING_CREDIT_PACKS = {
    "starter": {"credits": 10, "unit_amount": 1000, "currency": "usd"},
    "builder": {"credits": 50, "unit_amount": 4500, "currency": "usd"},
    "team": {"credits": 200, "unit_amount": 16000, "currency": "usd"},
}

# Payments (Stripe Checkout). Without both keys the payment endpoints answer 503 and the rest
# of billing works. STRIPE_API_BASE points the client elsewhere (the tests' loopback server).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# A webhook signed longer ago than this is refused as stale (Stripe's own default).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)

# Live streams (WebSocket and Server-Sent Events)
WEBSOCKET_MAX_MESSAGE_BYTES = env.int("WEBSOCKET_MAX_MESSAGE_BYTES", default=64 * 1024)
SSE_KEEPALIVE_SECONDS = env.float("SSE_KEEPALIVE_SECONDS", default=15.0)

# =============================================================================
# Dramatiq
# =============================================================================
DRAMATIQ_BROKER_URL = _url(
    "DRAMATIQ_BROKER_URL",
    ("amqp", "amqps", "redis", "rediss"),
    "amqp://USER:PASSWORD@HOST:5672/ or redis://HOST:6379/0",
)
_broker_url = DRAMATIQ_BROKER_URL or REDIS_URL
if _broker_url is None:
    # Embedded default: messages stay in this process and are handled by the
    # worker threads that `manage.py serve` (or runserver) starts beside the server.
    _broker = {"BROKER": "dramatiq.brokers.stub.StubBroker", "OPTIONS": {}}
elif _broker_url.startswith("amqp"):
    _broker = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": _broker_url, "confirm_delivery": True},
    }
else:
    _broker = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {"url": _broker_url, "socket_connect_timeout": 5},
    }
DRAMATIQ_BROKER = {
    **_broker,
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
EMBEDDED_WORKER = _broker_url is None
EMBEDDED_WORKER_THREADS = env.int("EMBEDDED_WORKER_THREADS", default=4)
# The scheduler (`manage.py crontab`) holds a Redis lock so that only one runs
# across all machines; without Redis, run exactly one scheduler process.
DRAMATIQ_CRONTAB = {"REDIS_URL": REDIS_URL} if REDIS_URL else {}

# =============================================================================
# Accounts (django-allauth)
# =============================================================================
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "executions:dashboard"

ACCOUNT_ADAPTER = "apps.users.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email", "username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Switchboard] "
if PRODUCTION:
    if env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory") != "mandatory":
        raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be 'mandatory' when DJANGO_ENV=production.")
    ACCOUNT_EMAIL_VERIFICATION = "mandatory"
else:
    ACCOUNT_EMAIL_VERIFICATION = _choice("ACCOUNT_EMAIL_VERIFICATION", ("mandatory", "optional", "none"), "mandatory")
ACCOUNT_RATE_LIMITS = {
    # Failed logins: per client address and per login name (allauth, backed by the cache).
    "login_failed": env.str("LOGIN_FAILED_RATE_LIMIT", default="10/m/ip,5/5m/key"),
}
# Number of reverse proxies in front of the web server whose X-Forwarded-For is trusted.
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
LOGIN_ATTEMPT_RETENTION_DAYS = env.int("LOGIN_ATTEMPT_RETENTION_DAYS", default=90)

SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
for _provider in ("github", "google"):
    _client_id = env.str(f"{_provider.upper()}_CLIENT_ID", default="")
    if _client_id:
        _secret = env.str(f"{_provider.upper()}_CLIENT_SECRET", default="")
        if not _secret:
            raise ImproperlyConfigured(
                f"{_provider.upper()}_CLIENT_SECRET must be set when {_provider.upper()}_CLIENT_ID is."
            )
        INSTALLED_APPS.append(f"allauth.socialaccount.providers.{_provider}")
        SOCIALACCOUNT_PROVIDERS[_provider] = {"APPS": [{"client_id": _client_id, "secret": _secret}]}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False

# =============================================================================
# Credentials and execution
# =============================================================================
# Fernet keys (comma-separated, newest first) that encrypt credential secrets at
# rest; older keys still decrypt, so keys rotate with `manage.py rotate_credential_keys`.
CREDENTIAL_KEYS = env.list("CREDENTIAL_KEYS", default=[])
if PRODUCTION and not CREDENTIAL_KEYS:
    raise ImproperlyConfigured(
        "CREDENTIAL_KEYS must be set when DJANGO_ENV=production "
        '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())").'
    )
# The only way for user-directed HTTP (nodes, tools, MCP, browser) to reach internal addresses:
# comma-separated `host`, `host:port`, address, `address:port` or CIDR entries; empty by default.
# Checked at start-up by apps.agents.egress (system check egress.E001).
EGRESS_ALLOW = env.list("EGRESS_ALLOW", default=[])
# Seconds a run may take in all, unless its plan says less.
EXECUTION_TIME_BUDGET_SECONDS = env.int("EXECUTION_TIME_BUDGET_SECONDS", default=3600)
# A running worker renews its lease this often; the reaper requeues runs whose lease is this old.
EXECUTION_LEASE_SECONDS = env.int("EXECUTION_LEASE_SECONDS", default=30)
# A run whose worker died this many times is failed instead of requeued again.
EXECUTION_MAX_DELIVERIES = env.int("EXECUTION_MAX_DELIVERIES", default=3)
# How often a running worker looks for a cancel request (seconds).
EXECUTION_CANCEL_POLL_SECONDS = env.float("EXECUTION_CANCEL_POLL_SECONDS", default=0.5)

# Avatars: the largest upload accepted, and the formats Pillow must recognise.
AVATAR_MAX_BYTES = env.int("AVATAR_MAX_BYTES", default=2 * 1024 * 1024)
AVATAR_MAX_PIXELS = 4096

# =============================================================================
# Browser pool: headless Chromium for the `browser` node and the agents' browser tools
# (apps/agents/browser/; one pool per worker process). Never `playwright install`.
# =============================================================================
BROWSER_EXECUTABLE = env.str("BROWSER_EXECUTABLE", default="/usr/bin/chromium")


def _positive(name: str, cast: type[int] | type[float], default: int | float) -> int | float:
    try:
        value = cast(env.str(name, default=str(default)).strip())
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):  # also refuses nan
        raise ImproperlyConfigured(f"{name} must be a {'whole ' if cast is int else ''}number greater than 0.")
    return value


# Chromium processes per worker process (about 375 MiB each), and runs (contexts) each one serves.
BROWSER_MAX_PROCESSES = _positive("BROWSER_MAX_PROCESSES", int, 2)
BROWSER_MAX_CONTEXTS_PER_PROCESS = _positive("BROWSER_MAX_CONTEXTS_PER_PROCESS", int, 4)
# A browser serving no run closes after this many seconds.
BROWSER_IDLE_SECONDS = _positive("BROWSER_IDLE_SECONDS", float, 120.0)
# The longest one action (open, click, extract…) may take; a node's config may only lower it.
BROWSER_ACTION_TIMEOUT_SECONDS = _positive("BROWSER_ACTION_TIMEOUT_SECONDS", float, 30.0)
BROWSER_LAUNCH_TIMEOUT_SECONDS = _positive("BROWSER_LAUNCH_TIMEOUT_SECONDS", float, 30.0)
# This many failed launches in a row make browser work fail fast (`browser_unavailable`) for the
# cool-down; then one trial launch decides whether the browser is back.
BROWSER_BREAKER_FAILURES = _positive("BROWSER_BREAKER_FAILURES", int, 3)
BROWSER_BREAKER_COOLDOWN_SECONDS = _positive("BROWSER_BREAKER_COOLDOWN_SECONDS", float, 30.0)
# The largest answer a page may load per request (bytes), and each page's JavaScript heap (MiB).
BROWSER_MAX_RESPONSE_BYTES = _positive("BROWSER_MAX_RESPONSE_BYTES", int, 20 * 1024 * 1024)
BROWSER_JS_HEAP_MB = _positive("BROWSER_JS_HEAP_MB", int, 512)
# The demo's browser workflow (seed_demo) opens a page this server serves itself. On the embedded
# default outside production, and only while EGRESS_ALLOW is not set, `make run`'s address joins it.
if EMBEDDED_WORKER and not PRODUCTION and "EGRESS_ALLOW" not in os.environ:
    EGRESS_ALLOW = [*EGRESS_ALLOW, "127.0.0.1:8000"]

# =============================================================================
# Email
# =============================================================================
# EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, credentials and TLS flags from one URL.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Switchboard <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# =============================================================================
# Internationalisation
# =============================================================================
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True

# =============================================================================
# Static and media files
# =============================================================================
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Front-end packages from npm (package.json; `npm ci` puts them in node_modules, never in the
# repository): URL prefix under STATIC_URL -> the package's dist folder. config.frontend's finder
# serves them and collectstatic copies them; a missing folder is a system check warning (frontend.W001).
NPM_STATIC = {"vendor/htmx": BASE_DIR / "node_modules" / "htmx.org" / "dist"}
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "config.frontend.NodePackagesFinder",
]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Outside production, whitenoise serves straight from the source folders (no collectstatic).
WHITENOISE_AUTOREFRESH = not PRODUCTION
WHITENOISE_USE_FINDERS = not PRODUCTION
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# =============================================================================
# REST framework: /api/v1/ (docs/api.md)
# =============================================================================
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # A key when one is sent (programs), else the session with CSRF (browsers).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.users.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.users.api.permissions.HasScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["apps.users.api.throttling.PrincipalThrottle"],
    "DEFAULT_THROTTLE_RATES": {"principal": env.str("API_THROTTLE_RATE", default="600/min")},
    "DEFAULT_PAGINATION_CLASS": "apps.users.api.pagination.NewestFirst",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "apps.users.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "PAGE_SIZE": 25,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Agents, workflows and their runs. Authenticate with `Authorization: Bearer <API key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "CreditTransactionKindEnum": "apps.billing.models.CreditTransaction.Kind",
        "CredentialKindEnum": "apps.agents.models.Credential.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.users.api.schema.add_error_responses",
    ],
}

# =============================================================================
# Security
# =============================================================================
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # Set when TLS ends at a proxy that sends X-Forwarded-Proto.
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # /health/* are probed over plain HTTP from inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^health/"]

# Prometheus metrics at /metrics; when set, scrapers must send `Authorization: Bearer <token>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# =============================================================================
# Logging: JSON lines in production, plain text in development; every line
# carries the request id that is also returned as X-Request-ID.
# =============================================================================
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": True,
    "UUID_LENGTH": 32,
}
LOG_FORMAT = _choice("LOG_FORMAT", ("json", "plain"), "json" if PRODUCTION else "plain")
LOG_LEVEL = _choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "django_guid.log_filters.CorrelationId", "correlation_id_field": "request_id"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "INFO"},
        "pika": {"level": "WARNING"},
        "django_guid": {"level": "WARNING"},
        "apscheduler": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO, query strings (tokens) included.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
