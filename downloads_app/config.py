"""Settings read from the environment (and an optional `.env` file), with defaults, as one typed object."""

import os
from dataclasses import fields, make_dataclass
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

# Bits per second by quality; ~0.3, 0.7, 1.5, 3 and 7 GB per hour of video.
DEFAULT_BITRATES_KBPS = "360p=667,480p=1556,720p=3333,1080p=6667,2160p=15556"
# HS256 keys shorter than its hash are refused by RFC 7518 (3.2) and warned about by PyJWT.
MIN_JWT_SECRET_BYTES = 32
NEW_SECRET_COMMAND = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _origins(text):
    """Parse `https://a.example, https://b.example` into a list (empty: CORS off)."""
    return [origin.strip() for origin in text.split(",") if origin.strip()]


def _flag(text):
    return text.strip().lower() in ("1", "true", "yes", "on")


def _directory(text):
    """An absolute path: a relative one is the project root's, as `.env` is, so every process
    agrees on it whatever its working directory (Flask would serve it from the package's)."""
    return os.path.normpath(PROJECT_ROOT / Path(text).expanduser())


def _bitrates(text):
    """Parse `360p=667,480p=1556` into {"360p": 667, ...} (kilobits per second)."""
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {quality.strip(): int(kbps) for quality, kbps in pairs}


# name: (parser, default); every name is read from the environment of the same name.
SETTINGS = {
    "DATABASE_URL": (str, f"sqlite:///{VAR_DIR / 'downloads.sqlite3'}"),
    "DATABASE_POOL_SIZE": (int, 20),
    "DATABASE_POOL_TIMEOUT": (float, 10.0),
    "DATABASE_TIMEOUT_SECONDS": (float, 10.0),  # PostgreSQL; below DOWNLOAD_STALL_SECONDS
    "REDIS_URL": (str, "redis://127.0.0.1:6379/0"),
    "REDIS_TIMEOUT_SECONDS": (float, 2.0),
    "JWT_SECRET": (str, ""),  # no default: a secret in the repository would let anyone mint tokens
    # Read when JWT_SECRET is empty; `make run` creates it (random, mode 0600) for this checkout.
    "JWT_SECRET_FILE": (str, str(VAR_DIR / "jwt-secret")),
    "JWT_TTL_SECONDS": (int, 24 * 3600),
    "STORAGE_QUOTA_BYTES": (int, 50_000_000_000),
    "QUALITY_BITRATES_KBPS": (_bitrates, DEFAULT_BITRATES_KBPS),
    "DOWNLOAD_TRANSPORT": (str, "simulated"),
    # Real transfers: where files come from when the catalogue names no source, where they go.
    "DOWNLOAD_ORIGIN_URL": (str, ""),
    "STORAGE_DIR": (_directory, str(VAR_DIR / "storage")),
    "STORAGE_FREE_MARGIN_BYTES": (int, 1_000_000_000),
    "DOWNLOAD_CONNECT_TIMEOUT_SECONDS": (float, 10.0),
    "DOWNLOAD_READ_TIMEOUT_SECONDS": (float, 20.0),  # below DOWNLOAD_STALL_SECONDS
    # Whether an origin may redirect to another host at a loopback, link-local or private address.
    "DOWNLOAD_ALLOW_PRIVATE_REDIRECTS": (_flag, "false"),
    "DOWNLOAD_CHUNK_BYTES": (int, 256 * 1024),
    "DOWNLOAD_PROGRESS_BYTES": (int, 1024 * 1024),
    "DOWNLOAD_MAX_BYTES_PER_SECOND": (int, 0),
    "DOWNLOAD_WORKER_MAX_BYTES_PER_SECOND": (int, 0),
    "DOWNLOAD_SIMULATED_SECONDS": (float, 5.0),
    "DOWNLOAD_MAX_ATTEMPTS": (int, 5),
    "DOWNLOAD_RETRY_MIN_BACKOFF_MS": (int, 1_000),
    "DOWNLOAD_RETRY_MAX_BACKOFF_MS": (int, 60_000),
    "DOWNLOAD_TIME_LIMIT_SECONDS": (int, 3_600),
    "DOWNLOAD_STALL_SECONDS": (float, 30.0),
    "DOWNLOAD_PROGRESS_INTERVAL_MS": (int, 200),
    "DOWNLOAD_RECONCILE_SECONDS": (float, 5.0),
    "DOWNLOADS_QUEUE": (str, "downloads"),
    "WORKER_IDLE_POLL_MS": (int, 100),
    "MIGRATIONS_DIR": (str, str(PROJECT_ROOT / "migrations")),
    "SSE_HEARTBEAT_SECONDS": (float, 15.0),
    "SSE_MAX_STREAM_SECONDS": (float, 3_600.0),
    "LOG_FORMAT": (str, "text"),
    # Abuse limits: request size, active downloads, rate limits (web/rate_limits.py), browsers.
    "MAX_REQUEST_BYTES": (int, 16 * 1024),
    "MAX_ACTIVE_DOWNLOADS_PER_USER": (int, 0),
    # The rules of offline viewing (a title's own rules in the catalogue override the first three).
    "LICENSE_DAYS": (float, 30.0),  # a completed download's licence, from its completion
    "PLAYBACK_WINDOW_HOURS": (float, 48.0),  # from the first playback, when that ends sooner
    "MAX_RENEWALS_PER_YEAR": (int, 3),  # per account and title, per calendar year (UTC)
    "MAX_DEVICES_PER_USER": (int, 6),
    "MAX_DOWNLOADS_PER_DEVICE": (int, 100),  # pending, downloading, paused or completed
    "RATELIMIT_ENABLED": (_flag, "true"),
    "RATELIMIT_STORAGE_URI": (str, ""),  # empty: REDIS_URL
    "RATELIMIT_START": (str, "30 per minute"),
    "RATELIMIT_WRITES": (str, "120 per minute"),
    "CORS_ORIGINS": (_origins, ""),
}


# The Python type of each parser's result, for the fields of Settings.
_TYPES = {_origins: list, _flag: bool, _bitrates: dict, _directory: str}

Settings = make_dataclass(
    "Settings",
    [(name.lower(), _TYPES.get(parse, parse)) for name, (parse, _) in SETTINGS.items()],
    frozen=True,
)
Settings.__doc__ = """Every setting of SETTINGS, typed, as a lowercase attribute (`settings.storage_dir`)."""


def settings_from(config):
    """The Settings of a mapping with every name of SETTINGS (the Flask app's config)."""
    return Settings(**{field.name: config[field.name.upper()] for field in fields(Settings)})


def load_settings(environ=None):
    """Return every setting, typed, from `environ` (default: the process environment)."""
    if environ is None:
        load_dotenv(PROJECT_ROOT / ".env")
        environ = os.environ
    settings = {}
    for name, (parse, default) in SETTINGS.items():
        raw = environ.get(name)
        value = default if raw in (None, "") else raw
        settings[name] = parse(value) if isinstance(value, str) else value
    if not settings["JWT_SECRET"]:
        settings["JWT_SECRET"] = _secret_in(settings["JWT_SECRET_FILE"])
    return settings


def _secret_in(path):
    """The secret kept in `path` (JWT_SECRET_FILE), or "" when there is no such file."""
    try:
        return Path(path).read_text().strip()
    except FileNotFoundError:
        return ""


def jwt_secret_problem(settings):
    """Why these settings cannot sign tokens safely, or None."""
    if not settings.jwt_secret:
        return (
            f"JWT_SECRET is not set (nor in {settings.jwt_secret_file}): refusing to start. "
            "The API, the worker and the CLI must share one random secret of at least "
            f"{MIN_JWT_SECRET_BYTES} bytes. Set JWT_SECRET in their environment, or in .env at the "
            f'repository root: echo "JWT_SECRET=$({NEW_SECRET_COMMAND})" >> .env'
        )
    if len(settings.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
        return (
            f"JWT_SECRET is {len(settings.jwt_secret.encode())} bytes long: refusing to start with fewer than "
            f"{MIN_JWT_SECRET_BYTES}. Replace it with the output of {NEW_SECRET_COMMAND}"
        )
    return None
