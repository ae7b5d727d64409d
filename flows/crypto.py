"""Encryption at rest (Fernet) of connection secrets and secret flow settings, with key rotation.

FLOWS_ENCRYPTION_KEY holds one or more comma-separated Fernet keys, newest first: the first
encrypts, all decrypt. Embedded mode without a key derives one from SECRET_KEY, so a laptop
install works out of the box; a distributed deployment sets its own.
"""

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretsUnreadable(Exception):
    """The stored secrets cannot be decrypted with the configured keys."""


def _keys() -> list[bytes]:
    configured = [k.strip() for k in settings.FLOWS_ENCRYPTION_KEY.split(",") if k.strip()]
    if configured:
        return [k.encode() for k in configured]
    derived = hashlib.sha256(("flowbuilder-secrets:" + settings.SECRET_KEY).encode()).digest()
    return [base64.urlsafe_b64encode(derived)]


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(_keys()))


def encrypt_json(value: dict) -> str:
    return fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretsUnreadable(
            "The stored secrets cannot be decrypted: FLOWS_ENCRYPTION_KEY does not hold the key "
            "they were encrypted with."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a token with the newest key."""
    return fernet().rotate(token.encode()).decode()
