"""Settings for the EDC, one module for every deployment.

Every knob that differs between a laptop and production is an environment variable with a safe
local default, so ``make demo`` needs nothing but Python. Production sets ``DEBUG=0``,
``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL`` and ``ALLOWED_HOSTS``.
See https://docs.djangoproject.com/en/5.2/ref/settings/ and the deployment checklist
https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/.
"""

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=True)

DEVELOPMENT_SECRET_KEY = "django-insecure-edc-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a private random value when DEBUG is off "
        "(the development key is public)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "edc",
    "visits",
    "forms",
    "exports",
    "wiring",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "edc.middleware.SessionRenewalMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "edc.middleware.UserLanguageMiddleware",
    "edc.middleware.NoStoreForAuthenticatedMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "edc.middleware.SiteTimezoneMiddleware",
    # After the password, the second factor for the roles that need it (edc.two_factor).
    "edc.two_factor.TwoFactorRequiredMiddleware",
    # Counts API requests; answers any rate limit reached below it with HTTP 429 (edc.ratelimit).
    "edc.ratelimit.RateLimitMiddleware",
    # Last, as django-axes asks: turns a lockout into the "account locked" page.
    "axes.middleware.AxesMiddleware",
]

# A history row without an author (a save that did not go through edc.history.audited_save)
# raises instead of leaving an anonymous change in the audit trail. The tests set it.
AUDIT_REQUIRE_AUTHOR = env_bool("AUDIT_REQUIRE_AUTHOR", False)

ROOT_URLCONF = "wiring.urls"
WSGI_APPLICATION = "edc.wsgi.application"
ASGI_APPLICATION = "edc.asgi.application"
AUTH_USER_MODEL = "edc.User"
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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wiring.context_processors.trial",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# A SQLite file by default so the demo needs no server; PostgreSQL (psycopg 3) in CI and
# production, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/edc

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# PostgreSQL with split roles (edc.db_roles, manage.py db_roles): the application connects as
# DATABASE_APP_ROLE, which owns nothing; migrate runs as the owner and grants it its privileges.
DATABASE_APP_ROLE = os.environ.get("DATABASE_APP_ROLE", "")
# Each request is one transaction: a failure half-way leaves no partial clinical record.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo server and its in-process tasks share one file; wait for the lock, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

# History rows keep the whole reason for a change (21 CFR 11.10(e)): reasons are free text
# (500 characters on the data-entry form), not django-simple-history's default 100.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# --- Authentication and sessions (21 CFR 11.300: controls on identification codes) ------------

# Password policy: at least 12 characters, not the username nor close to the person's name or
# e-mail, not a common or an all-digit password.
AUTH_PASSWORD_VALIDATORS = [
    # Django's UserAttributeSimilarityValidator (username, first and last name, e-mail) and
    # the full name in either order, the password's letters alone (edc.accounts).
    {"NAME": "edc.accounts.PersonalNameSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "edc.accounts.UsernameNotInPasswordValidator"},
]
# Argon2 for every password set from now on; older PBKDF2 hashes still verify and are rehashed
# with Argon2 at the next login. https://docs.djangoproject.com/en/5.2/topics/auth/passwords/
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# Lockout after repeated failed logins (django-axes, https://django-axes.readthedocs.io/).
# Locked per username, not per IP: a ward shares one workstation and one address, and a
# colleague's typos must not lock everybody out. The lock lifts after the cool-off or when an
# administrator unlocks the account (user list action "Unlock", or axes_reset_username).
AUTHENTICATION_BACKENDS = [
    "edc.accounts.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = dt.timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "30")))
AXES_LOCKOUT_PARAMETERS = ["username"]
# Counted under the account's stored username whatever the letter case typed (usernames are
# unique ignoring case, edc.models.User).
AXES_USERNAME_CALLABLE = "edc.accounts.lockout_username"
# axes warns when the IP is not a lockout parameter. Counting per username already counts every
# attempt whatever the address or browser; spraying one password over many usernames from one
# address is for the reverse proxy's rate limit, not for a lock that would shut out a ward.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "edc.accounts.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# API tokens (api.tokens): how long a new token lasts by default and at most, and how many
# bad tokens one address may send before it is refused for the login cool-off time.
API_TOKEN_DAYS = int(os.environ.get("API_TOKEN_DAYS", "90"))
API_TOKEN_MAX_DAYS = int(os.environ.get("API_TOKEN_MAX_DAYS", "365"))
API_BAD_TOKEN_LIMIT = int(os.environ.get("API_BAD_TOKEN_LIMIT", "10"))
API_BAD_TOKEN_COOLOFF = AXES_COOLOFF_TIME
# The largest record import (API or import page): bytes of data and rows.
API_IMPORT_MAX_BYTES = int(os.environ.get("API_IMPORT_MAX_BYTES", str(2 * 1024 * 1024)))
API_IMPORT_MAX_ROWS = int(os.environ.get("API_IMPORT_MAX_ROWS", "5000"))
# Rate limits (edc.ratelimit): "count/seconds" per login address, per account at password
# prompts (signing, unblinding, password change), per API token or account; empty: no limit.
# Counted in the shared cache (Redis with REDIS_URL). A ward behind one address shares the
# login limit, so it is generous; the lockout above guards each account.
RATE_LIMITS = {
    "login": os.environ.get("LOGIN_RATE_LIMIT", "30/300"),
    "reauthentication": os.environ.get("REAUTH_RATE_LIMIT", "30/300"),
    "api": os.environ.get("API_RATE_LIMIT", "300/60"),
}
RATE_LIMITED_PATHS = ["/api/"]
RATE_LIMIT_KEY_PREFIX = os.environ.get("RATE_LIMIT_KEY_PREFIX", "edc-rate")
# Behind the TLS proxy the client's address is the last X-Forwarded-For entry.
RATE_LIMIT_CLIENT_FROM_FORWARDED_FOR = env_bool("BEHIND_TLS_PROXY", default=False)
# Two-factor login (edc.two_factor): the roles that need a code after the password, "all" or
# role values (site_staff,investigator,...); default every role in production, none in the
# demo (DEBUG on).
TWO_FACTOR_ROLES = env_list("TWO_FACTOR_ROLES", "" if DEBUG else "all")
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Trial EDC")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Automatic log-off after a period of inactivity (seconds). A request renews the session
# (writes it with a new expiry) when its last renewal is SESSION_RENEW_SECONDS old or more
# (edc.middleware.SessionRenewalMiddleware), not on every request: an idle session is logged off
# after SESSION_COOKIE_AGE at the latest, at most SESSION_RENEW_SECONDS earlier.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_IDLE_TIMEOUT", "1800"))
SESSION_RENEW_SECONDS = min(60, SESSION_COOKIE_AGE // 10)
SESSION_SAVE_EVERY_REQUEST = False
# Django's database sessions, a renewal written in one statement (edc/sessions.py).
SESSION_ENGINE = "edc.sessions"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True

# --- Security headers (``manage.py check --deploy`` is clean with DEBUG off) -----------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env_bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Everything the pages need is served by this application: no CDN, no inline script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- Internationalisation and time -------------------------------------------------------------
# Datetimes are stored in UTC (USE_TZ); pages show each site's local time. TIME_ZONE is the
# zone used where no single site applies (e.g. a data manager looking at all sites).

LANGUAGE_CODE = "en"
# Each language named in itself, so that a reader finds their own in the switcher.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise from our own files; the product works offline) --------

STATIC_URL = "static/"
# Where finished dataset exports (zip files) are kept for download.
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", BASE_DIR / "var" / "exports"))
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Locally, files are found where they are; production serves what collectstatic gathered.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- E-mail ----------------------------------------------------------------------------------
# Without EMAIL_HOST, mails are printed to the console (local demo).

EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "edc@localhost")
# The address people reach the EDC at, for links in e-mails.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
# The sponsor's safety contact: told of serious adverse events and emergency unblindings.
SPONSOR_CONTACT_EMAIL = os.environ.get("SPONSOR_CONTACT_EMAIL", "")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery (broker: Redis; without REDIS_URL tasks run in-process) ---------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# Shared by web and workers (export progress); in-process memory when tasks run in-process.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Proves the worker and beat are alive; its record is shown to data managers.
    "heartbeat": {"task": "edc.tasks.heartbeat", "schedule": 300.0},
    # One digest per site staff member per site-local day (the log keeps it to one); 23:00 UTC
    # is 07:00 in China, before the morning round.
    "visit-reminders": {
        "task": "visits.tasks.visit_reminders",
        "schedule": crontab(minute=0, hour=int(os.environ.get("VISIT_REMINDER_HOUR_UTC", "23"))),
    },
    # Serious adverse events: the 24-hour clock needs a short period.
    "sae-reminders": {"task": "forms.tasks.sae_reminders", "schedule": 900.0},
    "query-reminders": {
        "task": "forms.tasks.query_reminders",
        "schedule": crontab(minute=30, hour=int(os.environ.get("QUERY_REMINDER_HOUR_UTC", "0"))),
    },
}
# The audit chains' tips, appended to a file outside the database (edc.audit_tips); keep it on
# another volume or host, append-only.
AUDIT_TIPS_FILE = Path(os.environ.get("AUDIT_TIPS_FILE", BASE_DIR / "var" / "audit-tips.jsonl"))
# Where manage.py backup writes (edc.backup); docker-compose mounts a volume here.
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR", BASE_DIR / "var" / "backups"))
CELERY_BEAT_SCHEDULE["audit-tips"] = {
    "task": "edc.tasks.audit_tips",
    "schedule": float(os.environ.get("AUDIT_TIPS_SECONDS", "900")),
}
# A heartbeat older than this is shown as a warning: reminders are not being sent.
HEARTBEAT_STALE_AFTER_SECONDS = int(os.environ.get("HEARTBEAT_STALE_AFTER_SECONDS", "900"))

# --- Reminders (edc.notifications, visits.reminders, forms.reminders) -------------------------
# A due visit is flagged as closing when its window ends within this many days.
VISIT_REMINDER_DAYS_BEFORE_WINDOW_END = int(os.environ.get("VISIT_REMINDER_DAYS", "2"))
# ICH E2A: a serious adverse event reaches the sponsor within 24 hours of site awareness.
SAE_REPORT_HOURS = 24
# The site is reminded when fewer than these many hours are left before the SAE deadline.
SAE_REMINDER_HOURS_LEFT = (12, 4)
QUERY_OPEN_REMIND_AFTER_DAYS = int(os.environ.get("QUERY_OPEN_REMIND_AFTER_DAYS", "7"))
QUERY_ANSWERED_REMIND_AFTER_DAYS = int(os.environ.get("QUERY_ANSWERED_REMIND_AFTER_DAYS", "5"))

# --- Logging ---------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- The trial ---------------------------------------------------------------------------------

TRIAL_NAME = os.environ.get("TRIAL_NAME", "hUC-MSC in acute ischemic stroke (NCT07084012)")
