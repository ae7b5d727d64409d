"""Flowbuilder settings: everything an operator changes comes from the environment.

Embedded mode (nothing set): SQLite, in-memory channel layer, runs executed in the server process.
Distributed mode (DATABASE_URL and REDIS_URL set): PostgreSQL, Redis channel layer, Celery workers.
"""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FLOWS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


DEBUG = env_bool("DEBUG", False)
# The embedded default is for a laptop; a production deployment must set its own key (checked
# below, once the mode is known).
EMBEDDED_SECRET_KEY = "flowbuilder-embedded-insecure-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", EMBEDDED_SECRET_KEY)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "flows",
    "integrations",
    "accounts",
    "web",
    "gallery",  # templates: the template gallery
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "web.middleware.ContentSecurityPolicyMiddleware",
    "web.middleware.DatabaseUnreachableMiddleware",
    # Last: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "flowbuilder.urls"
WSGI_APPLICATION = "flowbuilder.wsgi.application"
ASGI_APPLICATION = "flowbuilder.asgi.application"

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
                "accounts.signup.context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'flowbuilder.sqlite3'}", conn_max_age=60
    )
}
# An outage must be answered in seconds, not after the pool's wait: a short connect timeout, and
# a pool wait that is long for a healthy database (a connection is held for milliseconds).
DB_CONNECT_TIMEOUT_S = env_int("FLOWS_DB_CONNECT_TIMEOUT_S", 3)
DB_POOL_TIMEOUT_S = float(os.environ.get("FLOWS_DB_POOL_TIMEOUT_S", "5"))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default keeps its database in var/: a fresh clone has no such folder yet.
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Server threads and the embedded executor write at once: wait for the lock instead of
    # failing, WAL lets readers go on, IMMEDIATE transactions queue writers on the timeout
    # instead of failing on a lock upgrade. Each thread keeps its connection: opening one (with
    # its PRAGMAs) cost about 2 ms of every webhook's CPU.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Under ASGI every request runs its database work on a thread of its own, so persistent
    # per-thread connections pile up past PostgreSQL's limit; a pool per process bounds them.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        connect_timeout=DB_CONNECT_TIMEOUT_S,
        pool={
            "min_size": 1,
            "max_size": env_int("FLOWS_DB_POOL_SIZE", 10),
            "timeout": DB_POOL_TIMEOUT_S,
        },
    )
# How many webhook requests of one server process may use the database at once (the others
# queue): a burst of a thousand callers waits its turn instead of timing out on the pool.
FLOWS_HOOK_DB_CONCURRENCY = env_int(
    "FLOWS_HOOK_DB_CONCURRENCY", max(2, env_int("FLOWS_DB_POOL_SIZE", 10) // 2)
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "flowbuilder@localhost")

# Mode: REDIS_URL set means distributed (Celery + channels_redis).
REDIS_URL = os.environ.get("REDIS_URL", "")
# Names of the locks runs take in Redis (flows/locks.py): deployments sharing a Redis only wait
# on each other's locks, so a shared prefix costs nothing but a rare wait.
FLOWS_LOCK_PREFIX = os.environ.get("FLOWS_LOCK_PREFIX", "flowbuilder-lock")
FLOWS_DISTRIBUTED = bool(REDIS_URL)
# Embedded: `make run` on a person's own machine, nothing shared. Anything else serves others and
# must not start with keys that every copy of this code knows.
FLOWS_EMBEDDED = not FLOWS_DISTRIBUTED and DATABASES["default"]["ENGINE"].endswith("sqlite3")
FLOWS_ENCRYPTION_KEY = os.environ.get("FLOWS_ENCRYPTION_KEY", "")
if not FLOWS_EMBEDDED:
    from django.core.exceptions import ImproperlyConfigured

    _missing = []
    if SECRET_KEY == EMBEDDED_SECRET_KEY or len(SECRET_KEY) < 32:
        _missing.append(
            "SECRET_KEY (a long random string: "
            'python -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    if not FLOWS_ENCRYPTION_KEY:
        _missing.append(
            "FLOWS_ENCRYPTION_KEY (the key that encrypts connection secrets: "
            'python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())")'
        )
    if _missing:
        raise ImproperlyConfigured(
            "Flowbuilder refuses to start outside the embedded mode (REDIS_URL or a non-SQLite "
            "DATABASE_URL is set) without its own keys. Set "
            + " and ".join(_missing)
            + ", keep them secret and the same on every server and worker (docs/deploy.md)."
        )

# Run events of two deployments sharing one Redis server must not meet: Redis pub/sub channel
# names ignore the database number, so each deployment gets its own prefix, derived from what
# differs between deployments. Set FLOWS_CHANNEL_PREFIX to keep it across a SECRET_KEY change.
FLOWS_CHANNEL_PREFIX = (
    os.environ.get("FLOWS_CHANNEL_PREFIX")
    or "fb-"
    + hashlib.sha256(
        f"{SECRET_KEY}\0{DATABASES['default']['NAME']}".encode(), usedforsecurity=False
    ).hexdigest()[:16]
)
# A browser watching a busy flow receives every event of every run: let its channel hold a burst.
CHANNEL_CAPACITY = 1000
# Run events go through Redis pub/sub: one PUBLISH per event and group, pushed to the servers
# that subscribed, about twice as cheap as the list-based layer's polling (docs/performance.md).
# Events are only ever live: a client reads what it missed from the database (flows.consumers).
# FLOWS_CHANNEL_LAYER=core selects the list-based layer.
FLOWS_CHANNEL_LAYER = os.environ.get("FLOWS_CHANNEL_LAYER", "pubsub")
if FLOWS_DISTRIBUTED and FLOWS_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL}], "prefix": FLOWS_CHANNEL_PREFIX},
        }
    }
elif FLOWS_DISTRIBUTED:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py reads time out after 5 s by default, exactly as long as channels_redis
                # blocks on an empty channel: the race closes idle WebSockets with 1011.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "capacity": CHANNEL_CAPACITY,
                "prefix": FLOWS_CHANNEL_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Worker processes: one more than the cores, so a core never idles while a run waits on the
# database or Redis (75 against 66 runs/s with 2 on 2 cores, docs/performance.md). Flows that wait
# on slow services (LLMs) want more: each process runs one run at a time.
CELERY_WORKER_CONCURRENCY = env_int("FLOWS_WORKER_CONCURRENCY", (os.cpu_count() or 1) + 1)
# The most runs one owner may have running while other owners' runs wait (0: no limit). By
# default, in distributed mode, one worker's processes but one: somebody else's run always finds
# a free process. An owner alone may use them all.
FLOWS_OWNER_MAX_RUNNING = env_int(
    "FLOWS_OWNER_MAX_RUNNING", max(1, CELERY_WORKER_CONCURRENCY - 1) if FLOWS_DISTRIBUTED else 0
)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# Secrets of connections are encrypted with FLOWS_ENCRYPTION_KEY (read above; comma-separated
# Fernet keys, newest first).
FLOWS_ARTIFACT_DIR = Path(os.environ.get("FLOWS_ARTIFACT_DIR", VAR_DIR / "artifacts"))
FLOWS_RUNNER_DIR = Path(os.environ.get("FLOWS_RUNNER_DIR", BASE_DIR / "build" / "runner"))

# Sandbox limits: defaults per step, and the operator's maxima that per-step overrides cannot pass.
FLOWS_STEP_MEMORY_MIB = env_int("FLOWS_STEP_MEMORY_MIB", 256)
FLOWS_STEP_MEMORY_MIB_MAX = env_int("FLOWS_STEP_MEMORY_MIB_MAX", 1024)
FLOWS_STEP_TIMEOUT_S = env_int("FLOWS_STEP_TIMEOUT_S", 30)
FLOWS_STEP_TIMEOUT_S_MAX = env_int("FLOWS_STEP_TIMEOUT_S_MAX", 300)
FLOWS_STEP_FUEL = env_int("FLOWS_STEP_FUEL", 20_000_000_000)
FLOWS_STEP_FUEL_MAX = env_int("FLOWS_STEP_FUEL_MAX", 200_000_000_000)
FLOWS_STEP_OUTPUT_BYTES = env_int("FLOWS_STEP_OUTPUT_BYTES", 1_048_576)
FLOWS_STEP_LOG_BYTES = env_int("FLOWS_STEP_LOG_BYTES", 262_144)

# Outbound HTTP from capabilities: private/loopback addresses are refused unless allowed here.
FLOWS_ALLOW_PRIVATE_HOSTS = env_bool("FLOWS_ALLOW_PRIVATE_HOSTS", False)


def private_hosts(spec: str) -> dict[str, set[tuple[str, int]]]:
    """ "llm=127.0.0.1:11434,http=10.0.0.5:8080" → {"llm": {("127.0.0.1", 11434)}, ...}"""
    allowed: dict[str, set[tuple[str, int]]] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        service, _, address = entry.partition("=")
        host, _, port = address.strip().rpartition(":")
        if not service.strip() or not host or not port.isdigit():
            raise ValueError(
                f"FLOWS_PRIVATE_HOSTS: {entry!r} is not service=host:port (e.g. "
                "llm=127.0.0.1:11434)"
            )
        allowed.setdefault(service.strip(), set()).add((host.strip("[]").lower(), int(port)))
    return allowed


# Private hosts a service may reach despite the guard (cloud metadata addresses never). On a
# person's own machine (the embedded mode) an LLM server such as Ollama on port 11434 is allowed.
FLOWS_PRIVATE_HOSTS = private_hosts(
    os.environ.get(
        "FLOWS_PRIVATE_HOSTS",
        "" if FLOWS_DISTRIBUTED else "llm=127.0.0.1:11434,llm=localhost:11434,llm=::1:11434",
    )
)
# Base URLs of outside services (GitHub Enterprise, local model servers, tests).
FLOWS_GITHUB_API_URL = os.environ.get("FLOWS_GITHUB_API_URL", "https://api.github.com")
FLOWS_SLACK_API_URL = os.environ.get("FLOWS_SLACK_API_URL", "https://slack.com/api")
FLOWS_TELEGRAM_API_URL = os.environ.get("FLOWS_TELEGRAM_API_URL", "https://api.telegram.org")

# Webhooks
FLOWS_WEBHOOK_MAX_BYTES = env_int("FLOWS_WEBHOOK_MAX_BYTES", 1_048_576)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(FLOWS_WEBHOOK_MAX_BYTES, 2_621_440)
# The server's address as the outside world reaches it (webhook URLs). Unset, the pages show
# the address the browser used.
FLOWS_PUBLIC_URL = os.environ.get("FLOWS_PUBLIC_URL", "")

# Run history retention
FLOWS_RUN_RETENTION_DAYS = env_int("FLOWS_RUN_RETENTION_DAYS", 30)
FLOWS_RUN_RETENTION_COUNT = env_int("FLOWS_RUN_RETENTION_COUNT", 1000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"flows": {"level": os.environ.get("FLOWS_LOG_LEVEL", "INFO")}},
}

# Integrations: the shared outbound HTTP path of the service modules (integrations/services/).
FLOWS_HTTP_TIMEOUT_S = float(os.environ.get("FLOWS_HTTP_TIMEOUT_S", "30"))
# Local models answer slowly: LLM calls get their own, longer timeout.
FLOWS_LLM_TIMEOUT_S = float(os.environ.get("FLOWS_LLM_TIMEOUT_S", "300"))
# Tries per request (the first one included), the first backoff, and the longest Retry-After
# we wait for; a service asking for longer gets a retryable error instead.
FLOWS_HTTP_ATTEMPTS = env_int("FLOWS_HTTP_ATTEMPTS", 3)
FLOWS_HTTP_BACKOFF_S = float(os.environ.get("FLOWS_HTTP_BACKOFF_S", "0.5"))
FLOWS_HTTP_RETRY_AFTER_MAX_S = float(os.environ.get("FLOWS_HTTP_RETRY_AFTER_MAX_S", "30"))
# Largest answer a service call reads, and the default cap of the http.request capability.
FLOWS_HTTP_RESPONSE_MAX_BYTES = env_int("FLOWS_HTTP_RESPONSE_MAX_BYTES", 10_485_760)
FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES = env_int("FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES", 1_048_576)
# HTTP client libraries log full URLs, and some services carry tokens in theirs (Telegram).
for _logger in ("httpx", "httpcore", "openai"):
    LOGGING["loggers"][_logger] = {"level": "WARNING"}

# Sandbox: maxima for the output and log limits a step may ask for, and the
# largest Wasm module that can be uploaded.
FLOWS_STEP_OUTPUT_BYTES_MAX = env_int("FLOWS_STEP_OUTPUT_BYTES_MAX", 16_777_216)
FLOWS_STEP_LOG_BYTES_MAX = env_int("FLOWS_STEP_LOG_BYTES_MAX", 4_194_304)
FLOWS_ARTIFACT_MAX_BYTES = env_int("FLOWS_ARTIFACT_MAX_BYTES", 16_777_216)

# Engine: executing runs, retries, worker loss, schedules, webhooks.
# "auto": Celery when REDIS_URL is set, else the embedded executor; "inline" executes in the caller.
FLOWS_EXECUTOR = os.environ.get("FLOWS_EXECUTOR", "auto")
FLOWS_EMBEDDED_WORKERS = env_int("FLOWS_EMBEDDED_WORKERS", 4)
# Distributed mode: a server executes runs whose caller waits on it (`?wait=`, a flow with an
# `http.respond` step) itself, at most this many at once; the workers take the rest. 0: the
# workers execute every run.
FLOWS_SERVER_RUNS = env_int("FLOWS_SERVER_RUNS", 4)
# Load the Python step runner when a process that executes runs starts (a Celery pool process, an
# embedded-mode server), not on its first run.
FLOWS_WARM_UP = os.environ.get("FLOWS_WARM_UP", "1") not in ("0", "false", "off", "")
# The embedded scheduler thread: "auto" runs it in embedded server processes; "on" / "off".
FLOWS_SCHEDULER = os.environ.get("FLOWS_SCHEDULER", "auto")
FLOWS_SCHEDULER_TICK_S = float(os.environ.get("FLOWS_SCHEDULER_TICK_S", "5"))
# Tries of a step whose error is retryable, and the first backoff (doubling, capped).
FLOWS_STEP_MAX_ATTEMPTS = env_int("FLOWS_STEP_MAX_ATTEMPTS", 3)
FLOWS_STEP_RETRY_BACKOFF_S = float(os.environ.get("FLOWS_STEP_RETRY_BACKOFF_S", "1"))
FLOWS_STEP_RETRY_BACKOFF_MAX_S = float(os.environ.get("FLOWS_STEP_RETRY_BACKOFF_MAX_S", "60"))
# Time budget of a host-side block (integration or logic) when summing a run's time limit.
FLOWS_BLOCK_TIMEOUT_S = env_int("FLOWS_BLOCK_TIMEOUT_S", 60)
# The longest time budget an agent step may be given (docs/agents.md).
FLOWS_AGENT_MAX_TIME_S = env_int("FLOWS_AGENT_MAX_TIME_S", 1800)
FLOWS_RUN_DEFAULT_TIME_LIMIT_S = env_int("FLOWS_RUN_DEFAULT_TIME_LIMIT_S", 600)
# A run whose worker died is executed again up to this many times in all, then failed.
FLOWS_RUN_MAX_ATTEMPTS = env_int("FLOWS_RUN_MAX_ATTEMPTS", 2)
FLOWS_RUN_HEARTBEAT_S = float(os.environ.get("FLOWS_RUN_HEARTBEAT_S", "10"))
FLOWS_RUN_STALE_S = env_int("FLOWS_RUN_STALE_S", 60)
# How often each Celery worker looks for runs a lost worker left behind (no beat needed).
FLOWS_WORKER_SWEEP_S = float(os.environ.get("FLOWS_WORKER_SWEEP_S", "20"))
# A run whose message a worker took this long ago without starting it was taken by a worker that
# died: the sweep sends it again (flows.tasks.recover_lost_messages).
FLOWS_UNSTARTED_MESSAGE_S = float(os.environ.get("FLOWS_UNSTARTED_MESSAGE_S", "10"))
# Longest `?wait=` a webhook caller may ask for.
FLOWS_WEBHOOK_MAX_WAIT_S = float(os.environ.get("FLOWS_WEBHOOK_MAX_WAIT_S", "30"))
# The flow language: steps of one run on parallel paths at once, a loop's items at once (the
# most a `logic.foreach` may ask for), how deep `flow.call` may nest, the longest wait or
# retry a run may park for, and backoffs shorter than this are slept through, not parked.
FLOWS_RUN_MAX_PARALLEL = env_int("FLOWS_RUN_MAX_PARALLEL", 8)
FLOWS_FOREACH_MAX_CONCURRENCY = env_int("FLOWS_FOREACH_MAX_CONCURRENCY", 10)
FLOWS_FOREACH_MAX_ITEMS = env_int("FLOWS_FOREACH_MAX_ITEMS", 1000)
FLOWS_SUBFLOW_MAX_DEPTH = env_int("FLOWS_SUBFLOW_MAX_DEPTH", 5)
FLOWS_WAIT_MAX_S = env_int("FLOWS_WAIT_MAX_S", 30 * 24 * 3600)
FLOWS_RETRY_AFTER_MAX_S = env_int("FLOWS_RETRY_AFTER_MAX_S", 3600)
FLOWS_PARK_MIN_S = float(os.environ.get("FLOWS_PARK_MIN_S", "5"))
FLOWS_RUN_MAX_TIME_LIMIT_S = env_int("FLOWS_RUN_MAX_TIME_LIMIT_S", 3 * 3600)
# What a run may store: log lines per step and per run (later ones are dropped, with one line
# that says so), the size of one key-value entry and of all of an owner's entries together.
FLOWS_STEP_LOG_LINES_MAX = env_int("FLOWS_STEP_LOG_LINES_MAX", 1000)
FLOWS_RUN_LOG_LINES_MAX = env_int("FLOWS_RUN_LOG_LINES_MAX", 5000)
FLOWS_KV_VALUE_MAX_BYTES = env_int("FLOWS_KV_VALUE_MAX_BYTES", 262_144)
FLOWS_KV_OWNER_MAX_BYTES = env_int("FLOWS_KV_OWNER_MAX_BYTES", 50 * 1_048_576)
CELERY_BEAT_SCHEDULE = {
    "flows-sweep-stale-runs": {"task": "flows.sweep_stale_runs", "schedule": 60.0},
    "flows-prune-runs": {"task": "flows.prune_runs", "schedule": 3600.0},
}
# A message is handed to another worker only after this long unacknowledged: above any run.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
# Celery's Django fixup otherwise closes a prefork process's database pool around every task:
# each run then paid for a new PostgreSQL connection (a server process fork and its start-up).
CELERY_DB_REUSE_MAX = env_int("FLOWS_WORKER_DB_REUSE_MAX", 1000)

# Templates: the folder of template bots that load_templates reads.
FLOWS_TEMPLATES_DIR = Path(os.environ.get("FLOWS_TEMPLATES_DIR", BASE_DIR / "flow_templates"))

# HTTPS behind a reverse proxy. FLOWS_PUBLIC_URL starting with https:// turns on secure cookies
# and HSTS; the proxy must set X-Forwarded-Proto for Django to see requests as secure.
FLOWS_HTTPS = env_bool("FLOWS_HTTPS", FLOWS_PUBLIC_URL.startswith("https://"))
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", FLOWS_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", FLOWS_HTTPS)
# "HTTP_X_FORWARDED_PROTO,https": only behind a proxy that sets (or strips) that header.
_proxy_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header.split(",", 1)) if "," in _proxy_header else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# A redirect would lose a webhook's POST body (callers do not repeat it): hooks are answered.
SECURE_REDIRECT_EXEMPT = [r"^hooks/"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if FLOWS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The pages load scripts and styles from this server only; json_script data is not executed, and
# the one inline handler (the step form's `onsubmit="return false"`) is allowed by its hash.
# htmx and CodeMirror set inline styles. FLOWS_CSP replaces the policy ("" turns it off).
FLOWS_CSP = os.environ.get(
    "FLOWS_CSP",
    "default-src 'self'; script-src 'self' 'unsafe-hashes' "
    "'sha256-GZIcz60Uwd6wT3vaYke/atSr53TehbYAPepOa3d03Vw='; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

# Accounts. Sign-up: "open" (anyone), "invite" (a link from `manage.py invite_user`) or "closed"
# (the operator makes accounts: `manage.py createsuperuser` for the first, the admin for others).
FLOWS_SIGNUP = os.environ.get("FLOWS_SIGNUP", "open" if FLOWS_EMBEDDED else "closed")
FLOWS_INVITE_MAX_AGE_S = env_int("FLOWS_INVITE_MAX_AGE_S", 7 * 24 * 3600)
# Login throttling (django-axes): after this many wrong passwords for one username from one
# address, logins for it from there are refused for the cool-off time.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("FLOWS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FLOWS_LOGIN_COOLOFF_MIN", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind a proxy the client's address is in X-Forwarded-For (set FLOWS_PROXY_COUNT to the number
# of proxies in front of the server).
AXES_IPWARE_PROXY_COUNT = env_int("FLOWS_PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Per-owner quotas on webhook runs (0: no limit): runs started in the last minute, and runs
# queued or running at once.
FLOWS_OWNER_RUNS_PER_MINUTE = env_int("FLOWS_OWNER_RUNS_PER_MINUTE", 0 if FLOWS_EMBEDDED else 1200)
FLOWS_OWNER_CONCURRENT_RUNS = env_int("FLOWS_OWNER_CONCURRENT_RUNS", 0 if FLOWS_EMBEDDED else 200)
