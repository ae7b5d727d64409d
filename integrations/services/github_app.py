"""GitHub App sign-in: the App's private key signs a short JWT (RS256, PyJWT), which GitHub
exchanges for an installation access token (an hour long) at
POST /app/installations/{id}/access_tokens.

Tokens are kept in this process until shortly before they expire, per App, installation and API,
so a run's many calls (and the runs after it) exchange once an hour. The private key and the
tokens stay on the host: steps never see either.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings

from flows.capabilities import CapabilityError
from integrations.services.base import ServiceClient, ServiceError, short_detail

# GitHub refuses a JWT that lives longer than 10 minutes; its clock may be a little behind ours.
JWT_LIFETIME_S = 540
JWT_BACKDATE_S = 60
# A cached token is renewed this long before it expires, so no call starts with a dying token.
RENEW_BEFORE_S = 300


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: str
    installation_id: str
    api_url: str

    @property
    def cache_key(self) -> tuple[str, str, str, str]:
        key = hashlib.sha256(self.private_key.encode()).hexdigest()
        return (self.api_url, self.app_id, self.installation_id, key)


def is_app(config: dict) -> bool:
    """Whether a GitHub connection signs in as a GitHub App (else with a token)."""
    return bool(str((config or {}).get("app_id") or "").strip())


def check_private_key(pem: str) -> None:
    """Refuse anything but an RSA private key in PEM, as GitHub gives it for download."""
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise CapabilityError(
            "The private key is not a PEM private key: paste the whole .pem file GitHub gave "
            "you, from -----BEGIN RSA PRIVATE KEY----- to its END line."
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise CapabilityError("The private key is not an RSA key: GitHub Apps use RSA keys.")


def app_jwt(app_id: str, private_key: str, now: float | None = None) -> str:
    """The App's own JWT: issued by the App id, backdated a minute, valid for nine."""
    now = time.time() if now is None else now
    claims = {
        "iat": int(now) - JWT_BACKDATE_S,
        "exp": int(now) + JWT_LIFETIME_S,
        "iss": str(app_id),
    }
    try:
        return jwt.encode(claims, private_key.strip(), algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        check_private_key(private_key)
        raise


class AppSignIn(ServiceClient):
    """The two calls an App makes as itself (with its JWT): about the App, and for a token."""

    name = "GitHub"

    def __init__(self, credentials: AppCredentials, log=None):
        self.credentials = credentials
        super().__init__(
            base_url=credentials.api_url,
            headers={
                "Authorization": f"Bearer {app_jwt(credentials.app_id, credentials.private_key)}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            guard=credentials.api_url.rstrip("/") != settings.FLOWS_GITHUB_API_URL.rstrip("/"),
            secrets=[credentials.private_key],
            log=log,
        )

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        status, detail = response.status_code, short_detail(response)
        app = self.credentials.app_id
        if status == 401:
            return self.fail(
                f"GitHub refused the sign-in of the GitHub App {app} ({detail or 'Unauthorized'}): "
                "check the connection's App ID and that its private key is the App's current one."
            )
        if status == 404 and "installation" in what:
            return self.fail(
                f"GitHub says the GitHub App {app} has no installation "
                f"{self.credentials.installation_id}: install the App on the repository's "
                "account (the App's page → Install App), or correct the connection's "
                "installation ID."
            )
        if status == 403 and "installation" in what:
            return self.fail(f"GitHub refused a token for {what}: {detail or 'Forbidden'}.")
        return super().error_for(response, what)

    def installation_token(self) -> tuple[str, float]:
        installation = self.credentials.installation_id
        what = f"the App's installation {installation}"
        body = self.request(
            "POST", f"/app/installations/{installation}/access_tokens", what=what
        ).json()
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self.fail(f"GitHub answered without a token for {what}.", retryable=True)
        return token, _expiry(body.get("expires_at"))

    def describe(self) -> dict:
        return self.request("GET", "/app", what="the GitHub App").json()


def _expiry(value: object) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 3600  # GitHub's tokens last an hour


_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}
_logins: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def installation_token(credentials: AppCredentials, *, fresh: bool = False, log=None) -> str:
    """A token for the installation: the cached one unless it expires soon (or `fresh`)."""
    if not credentials.installation_id:
        raise CapabilityError(
            f"The GitHub App {credentials.app_id} needs an installation ID for this call: the "
            "event names none. Set the installation ID on the connection (the number at the end "
            "of the installation's settings URL, github.com/settings/installations/<id>)."
        )
    key = credentials.cache_key
    with _lock:
        cached = _tokens.get(key)
        if cached and not fresh and cached[1] - RENEW_BEFORE_S > time.time():
            return cached[0]
        with AppSignIn(credentials, log) as app:
            token, expires = app.installation_token()
        _tokens[key] = (token, expires)
        return token


def forget_tokens() -> None:
    """Drop every cached installation token and App login (tests; a key rotation)."""
    with _lock:
        _tokens.clear()
        _logins.clear()


def credentials_for(
    config: dict, secrets: dict, api_url: str, event_installation: str = ""
) -> AppCredentials:
    """The App's credentials for a call: the configured installation, else the event's (an App
    installed on several accounts leaves it unset and serves each from its own events)."""
    app_id = str(config.get("app_id") or "").strip()
    private_key = str((secrets or {}).get("private_key") or "")
    if not private_key:
        raise CapabilityError(
            f"The GitHub connection signs in as the GitHub App {app_id} but has no private key: "
            "add the App's private key (.pem) to the connection."
        )
    installation = str(config.get("installation_id") or "").strip() or event_installation
    return AppCredentials(app_id, private_key, installation, api_url)


def app_login(credentials: AppCredentials, log=None) -> str:
    """The login the App comments as ("<slug>[bot]"), asked of GitHub once per App."""
    key = (credentials.api_url, credentials.app_id)
    if key not in _logins:
        with AppSignIn(credentials, log) as app:
            slug = app.describe().get("slug") or ""
        if not slug:
            raise CapabilityError(f"GitHub did not say the name of the GitHub App {key[1]}.")
        _logins[key] = f"{slug}[bot]"
    return _logins[key]


def test(config: dict, secrets: dict, api_url: str) -> str:
    """Sign in as the App; with a configured installation, get a token for it too."""
    credentials = credentials_for(config, secrets, api_url)
    with AppSignIn(credentials) as app:
        about = app.describe()
        name = about.get("name") or about.get("slug") or credentials.app_id
        if not credentials.installation_id:
            return (
                f"Signed in to GitHub as the App {name}. Each run uses the installation its "
                "event names; set an installation ID for runs that do not start from a GitHub "
                "event."
            )
        app.installation_token()
    return f"Signed in to GitHub as the App {name}, installation {credentials.installation_id}."
