"""Settings an operator gives in the environment, read by a fresh `manage.py` process: the app
refuses to serve others with the public default keys, and the HTTPS settings of docs/deploy.md
leave Django's deployment check with nothing to say."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_SET = (
    "SECRET_KEY",
    "FLOWS_ENCRYPTION_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "FLOWS_SIGNUP",
    "DJANGO_SETTINGS_MODULE",
)
SECRET = "a-production-secret-key-for-this-test-only-0123456789"
FERNET = "dGVzdHMtb25seS1mZXJuZXQta2V5LTAxMjM0NTY3ODk="
PRODUCTION = {
    "DATABASE_URL": "postgres://flowbuilder@127.0.0.1:9/flowbuilder",
    "REDIS_URL": "redis://127.0.0.1:9/0",
}
HTTPS = {
    "FLOWS_PUBLIC_URL": "https://flows.example.com",
    "ALLOWED_HOSTS": "flows.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in OPERATOR_SET}
    clean["DJANGO_SETTINGS_MODULE"] = "flowbuilder.settings"
    clean["FLOWS_VAR_DIR"] = env.pop("FLOWS_VAR_DIR", str(ROOT / "var"))
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_with_the_default_keys_and_says_how_to_make_them():
    done = manage("check", **PRODUCTION)
    assert done.returncode != 0
    assert "refuses to start outside the embedded mode" in done.stderr
    assert 'SECRET_KEY (a long random string: python -c "import secrets' in done.stderr
    assert "FLOWS_ENCRYPTION_KEY (the key that encrypts connection secrets" in done.stderr
    assert "Fernet.generate_key()" in done.stderr


def test_production_without_an_encryption_key_is_refused_too():
    done = manage("check", SECRET_KEY=SECRET, **PRODUCTION)
    assert done.returncode != 0
    assert "Set FLOWS_ENCRYPTION_KEY" in done.stderr
    assert "SECRET_KEY (" not in done.stderr


def test_the_embedded_mode_starts_without_keys_and_opens_sign_up(tmp_path):
    done = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.FLOWS_SIGNUP)",
        FLOWS_VAR_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "open"


def test_https_settings_come_from_the_environment_and_pass_the_deployment_check():
    keys = {"SECRET_KEY": SECRET, "FLOWS_ENCRYPTION_KEY": FERNET}
    done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, **keys, **HTTPS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout

    script = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
        "s.SECURE_HSTS_SECONDS, s.FLOWS_SIGNUP]))"
    )
    shown = manage("shell", "-c", script, **PRODUCTION, **keys, **HTTPS)
    assert json.loads(shown.stdout.strip().splitlines()[-1]) == [
        True,
        True,
        ["HTTP_X_FORWARDED_PROTO", "https"],
        31_536_000,
        "closed",
    ]
