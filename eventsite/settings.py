"""Settings, read from EVENTSITE_* environment variables with defaults that need no services."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: str = "False") -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def envduration(name: str, default: str) -> timedelta:
    """Read a duration such as `7d`, `12h`, `30m`, `45s` or a plain number of seconds."""
    raw = os.environ.get(name, default).strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if raw and raw[-1] in units:
        return timedelta(seconds=float(raw[:-1]) * units[raw[-1]])
    return timedelta(seconds=float(raw))


DATA_DIR = Path(envstr("EVENTSITE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


DATABASE_URL = envstr("EVENTSITE_DATABASE_URL", f"sqlite:///{DATA_DIR / 'eventsite.sqlite3'}")
# Several processes sharing one database must sign sessions, CSRF and page tokens with one key;
# a key generated per data directory would differ between them. `eventsite.checks` refuses to
# start such a deployment without `EVENTSITE_SECRET_KEY` (the key below is then never written).
EVENTSITE_SECRET_KEY_SHARED = bool(envstr("EVENTSITE_SECRET_KEY"))
EVENTSITE_SECRET_KEY_REQUIRED = bool(envstr("EVENTSITE_DATABASE_URL"))


def _secret_key() -> str:
    if key := envstr("EVENTSITE_SECRET_KEY"):
        return key
    if EVENTSITE_SECRET_KEY_REQUIRED:
        return secrets.token_urlsafe(50)  # this process only; the system check stops it
    # Generated once per data dir so sessions survive restarts without a key in the repo.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("EVENTSITE_DEBUG")

# --- where people reach eventsite ----------------------------------------------------------------
# What people type to reach eventsite, e.g. https://events.example.com (see eventsite/links.py).
# Everything a deployment behind a proxy needs follows from it: the host names Django answers,
# the origins CSRF trusts, secure cookies, HSTS, which proxy headers are believed, and every
# absolute URL the app builds.
EVENTSITE_PUBLIC_URL = envstr("EVENTSITE_PUBLIC_URL").rstrip("/")
_public = urlsplit(EVENTSITE_PUBLIC_URL)
if EVENTSITE_PUBLIC_URL and (_public.scheme not in ("http", "https") or not _public.hostname):
    raise ImproperlyConfigured(
        f"EVENTSITE_PUBLIC_URL={EVENTSITE_PUBLIC_URL!r} is not a URL like https://events.example.com"
    )
# Loopback names stay allowed so health checks and local scripts can reach a backend directly.
ALLOWED_HOSTS = envstr("EVENTSITE_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
if EVENTSITE_PUBLIC_URL:
    ALLOWED_HOSTS.append(f"[{_public.hostname}]" if ":" in _public.hostname else _public.hostname)
elif not envstr("EVENTSITE_ALLOWED_HOSTS"):
    ALLOWED_HOSTS.append("testserver")  # Django's test client
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"] if EVENTSITE_PUBLIC_URL else []
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # pages send the token from the template (`hx-headers`), not a cookie
CSRF_COOKIE_SAMESITE = "Lax"
# `serve` speaks no TLS, so an https public URL means a TLS-terminating proxy in front: only then
# are its X-Forwarded-Proto (here) and X-Forwarded-For (`serve`, for login throttling) believed.
EVENTSITE_BEHIND_TLS_PROXY = _public.scheme == "https"
if EVENTSITE_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Plain http that reaches Django through the proxy goes to the public URL; a backend's own
    # health check stays answerable over loopback http.
    SECURE_SSL_REDIRECT = True
    SECURE_SSL_HOST = _public.netloc
    SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
    # A year, with subdomains and preload, unless the operator says otherwise; HSTS is only sent
    # on https responses, and preload only takes effect once someone submits the domain.
    SECURE_HSTS_SECONDS = envint("EVENTSITE_HSTS_SECONDS", 365 * 86400)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("EVENTSITE_HSTS_INCLUDE_SUBDOMAINS", "true")
    SECURE_HSTS_PRELOAD = envbool("EVENTSITE_HSTS_PRELOAD", "true")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
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
    "django_htmx",
    "template_partials",
    "channels",
    "eventsite",
    "events",
    "automations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "eventsite.unstorable_urls.RefuseNulInUrlsMiddleware",
    "eventsite.query_deadline.QueryDeadlineMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "eventsite.urls"
ASGI_APPLICATION = "eventsite.asgi.application"

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
                "events.personal.context.preferences",
                "events.accounts.roles.can",
            ],
        },
    },
]

# --- storage -----------------------------------------------------------------------------------
# No persistent connections: under ASGI every request runs in its own context and would open (and
# keep) a connection of its own. PostgreSQL gets a real pool instead; on SQLite `serve`'s request
# threads keep theirs between requests (`eventsite.request_threads`).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": 20,
        "timeout": 30,
    }
    # No JIT compilation: the log's reads are short and bounded (a page, a budgeted count), but
    # their plans over millions of rows are costed above jit_above_cost, so each paid 4-50 ms of
    # compiling (EXPLAIN ANALYZE at 1M) for nothing. A URL's own `options` wins.
    DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers take the lock when the transaction starts, so concurrent writers queue on the
        # busy timeout instead of failing with "database is locked" when a read lock upgrades.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA temp_store=MEMORY;"
            "PRAGMA cache_size=-16384;"
            # What a reset WAL keeps on disk (`eventsite.sqlite_wal` resets it past a size).
            "PRAGMA journal_size_limit=67108864;"
        ),
    }
    # A file, not :memory:, so a server started by a test (a separate process) sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
elif name := envstr("EVENTSITE_TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("EVENTSITE_REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
        }
    }
    # One cache for every process, so the feed's histogram and name counts agree between them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": envstr("EVENTSITE_CACHE_PREFIX", "eventsite"),
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1500}}
    }

# --- auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/events/"
LOGOUT_REDIRECT_URL = "login"

# --- i18n / static -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["events.api.auth.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "events.accounts.roles.HasCapability",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "events.api.bodies.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "eventsite API",
    "DESCRIPTION": "Events API, wire-compatible with Prefect 3's /api/events endpoints.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # 3.1: request models are pydantic's JSON Schema (2020-12), which 3.1 is built on; 3.0 has
    # no `null` type for optional fields.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "eventsite.openapi.document_common_answers",
    ],
}

# --- events ------------------------------------------------------------------------------------
EVENTSITE_MAX_EVENT_NAME_LENGTH = envint("EVENTSITE_MAX_EVENT_NAME_LENGTH", 1024)
EVENTSITE_MAX_LABELS_PER_RESOURCE = envint("EVENTSITE_MAX_LABELS_PER_RESOURCE", 500)
EVENTSITE_MAX_RELATED_RESOURCES = envint("EVENTSITE_MAX_RELATED_RESOURCES", 100)
EVENTSITE_MAX_EVENT_SIZE_BYTES = envint("EVENTSITE_MAX_EVENT_SIZE_BYTES", 1_500_000)
# How often open sockets re-check their token and role (events/accounts/revocation.py).
EVENTSITE_SOCKET_RECHECK = envduration("EVENTSITE_SOCKET_RECHECK", "2s")
# Every read a request makes is stopped past this (503 with the reason): eventsite/query_deadline.py.
EVENTSITE_QUERY_TIMEOUT = envduration("EVENTSITE_QUERY_TIMEOUT", "10s")
# A websocket message up to this size is read (an event over the limit is then skipped and
# reported, the connection stays up); past it the server closes the socket with 1009.
EVENTSITE_WEBSOCKET_MAX_MESSAGE_BYTES = envint(
    "EVENTSITE_WEBSOCKET_MAX_MESSAGE_BYTES", 4 * EVENTSITE_MAX_EVENT_SIZE_BYTES
)
EVENTSITE_EVENT_RETENTION = envduration("EVENTSITE_EVENT_RETENTION", "7d")
EVENTSITE_AUDIT_RETENTION = envduration("EVENTSITE_AUDIT_RETENTION", "365d")
# A batch may hold many events; each one is still held to the per-event limit above.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("EVENTSITE_MAX_REQUEST_BYTES", 64 * 1024 * 1024)
EVENTSITE_PRUNE_INTERVAL = envduration("EVENTSITE_PRUNE_INTERVAL", "1h")
# SQLite: how often the WAL's size is looked at, and past what size it is checkpointed and
# truncated (`eventsite.sqlite_wal`).
EVENTSITE_SQLITE_WAL_CHECK = envduration("EVENTSITE_SQLITE_WAL_CHECK", "1s")
EVENTSITE_SQLITE_WAL_LIMIT_MB = envint("EVENTSITE_SQLITE_WAL_LIMIT_MB", 64)
# How often a process checks that it still holds a once-per-deployment service's lock, and a
# standby process whether the lock is free to take over (eventsite/services.py).
EVENTSITE_SERVICE_LOCK_POLL = envduration("EVENTSITE_SERVICE_LOCK_POLL", "10s")

# --- webhooks, audit, accounts -----------------------------------------------------------------
# A webhook body becomes (part of) one event, so it is held to the per-event limit by default.
EVENTSITE_WEBHOOK_MAX_BODY_BYTES = envint(
    "EVENTSITE_WEBHOOK_MAX_BODY_BYTES", EVENTSITE_MAX_EVENT_SIZE_BYTES
)
# Webhook templates render in this many worker processes (0: in the server's threads), each
# allowed this much memory above its size at rest (events/webhooks/render_workers.py).
EVENTSITE_TEMPLATE_WORKERS = envint("EVENTSITE_TEMPLATE_WORKERS", 2)
EVENTSITE_TEMPLATE_WORKER_MEMORY_MB = envint("EVENTSITE_TEMPLATE_WORKER_MEMORY_MB", 512)
# Requests to made-up /hooks/ URLs logged a minute (metadata only); the rest are answered only.
EVENTSITE_WEBHOOK_UNKNOWN_PER_MINUTE = envint("EVENTSITE_WEBHOOK_UNKNOWN_PER_MINUTE", 60)
EVENTSITE_WEBHOOK_LOG_RETENTION = envduration("EVENTSITE_WEBHOOK_LOG_RETENTION", "30d")
EVENTSITE_LOGIN_FAILURES_PER_ACCOUNT = envint("EVENTSITE_LOGIN_FAILURES_PER_ACCOUNT", 5)
EVENTSITE_LOGIN_FAILURES_PER_IP = envint("EVENTSITE_LOGIN_FAILURES_PER_IP", 20)
EVENTSITE_LOGIN_THROTTLE_WINDOW = envduration("EVENTSITE_LOGIN_THROTTLE_WINDOW", "15m")
EVENTSITE_LOGIN_SLOW_INTERVAL = envduration("EVENTSITE_LOGIN_SLOW_INTERVAL", "5s")
AUTHENTICATION_BACKENDS = ["events.accounts.throttle.ThrottledModelBackend"]
MIDDLEWARE.append("events.audit.middleware.CurrentRequestMiddleware")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("EVENTSITE_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}
SPECTACULAR_SETTINGS.update(
    {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}
)

# --- automations -------------------------------------------------------------------------------
# How often proactive triggers are evaluated, and how often an idle engine looks for new events
# without being woken (stores wake it: `events.wakeup`; this poll is only a safety net).
EVENTSITE_ENGINE_TICK = envduration("EVENTSITE_ENGINE_TICK", "5s")
EVENTSITE_ENGINE_POLL = envduration("EVENTSITE_ENGINE_POLL", "1s")
# Events committed out of `received` order are caught up to this long after the cursor passed.
EVENTSITE_ENGINE_OVERLAP = envduration("EVENTSITE_ENGINE_OVERLAP", "30s")
EVENTSITE_ENGINE_BATCH = envint("EVENTSITE_ENGINE_BATCH", 2000)
EVENTSITE_ACTION_WORKERS = envint("EVENTSITE_ACTION_WORKERS", 4)
# The default retry schedule of an action (each action may set its own `retry`): 10 attempts,
# waits doubling from 10 s up to 30 min, about 72 minutes from the first attempt to the last.
EVENTSITE_ACTION_MAX_ATTEMPTS = envint("EVENTSITE_ACTION_MAX_ATTEMPTS", 10)
EVENTSITE_ACTION_RETRY_BASE = envduration("EVENTSITE_ACTION_RETRY_BASE", "10s")
EVENTSITE_ACTION_RETRY_CAP = envduration("EVENTSITE_ACTION_RETRY_CAP", "30m")
DEFAULT_FROM_EMAIL = envstr("EVENTSITE_FROM_EMAIL", "eventsite@localhost")
EMAIL_BACKEND = envstr("EVENTSITE_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = envstr("EVENTSITE_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EVENTSITE_EMAIL_PORT", 25)
# Outbound calls of actions (call-webhook, presets): loopback, link-local (cloud metadata) and
# private addresses are refused unless allowed: "1" allows them all, or give networks
# ("10.0.0.0/8,127.0.0.1/32"). Checked on the resolved address of every connection, redirects too.
EVENTSITE_ACTIONS_ALLOW_PRIVATE = envstr("EVENTSITE_ACTIONS_ALLOW_PRIVATE", "")
EVENTSITE_ACTIONS_MAX_REDIRECTS = envint("EVENTSITE_ACTIONS_MAX_REDIRECTS", 3)
EVENTSITE_ACTIONS_MAX_RESPONSE_BYTES = envint("EVENTSITE_ACTIONS_MAX_RESPONSE_BYTES", 65536)

# --- secrets at rest (eventsite/field_secrets.py) ------------------------------------------------
# Any string; stretched into the Fernet key. Rotation: new key here, old ones (whitespace-separated)
# in EVENTSITE_FIELD_KEY_OLD, then `manage.py reseal_secrets`.
# Empty: derived from SECRET_KEY when used (so it follows the key every process shares).
EVENTSITE_FIELD_KEY = envstr("EVENTSITE_FIELD_KEY")
EVENTSITE_FIELD_KEY_OLD = envstr("EVENTSITE_FIELD_KEY_OLD").split()
