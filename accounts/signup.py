"""Who may create an account (FLOWS_SIGNUP): anyone ("open"), whoever holds an invitation link
("invite", made by `manage.py invite_user`), or nobody ("closed": the operator makes accounts)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

INVITE_SALT = "flowbuilder.accounts.invite"
MODES = ("open", "invite", "closed")


def mode() -> str:
    value = settings.FLOWS_SIGNUP
    if value not in MODES:
        raise ValueError(f"FLOWS_SIGNUP must be one of {', '.join(MODES)}, not '{value}'")
    return value


def make_invite(email: str) -> str:
    return signing.dumps({"email": email}, salt=INVITE_SALT)


def invited_email(token: str) -> str | None:
    """The address an invitation was made for, or None when it is forged or too old."""
    try:
        data = signing.loads(token, salt=INVITE_SALT, max_age=settings.FLOWS_INVITE_MAX_AGE_S)
    except signing.BadSignature:
        return None
    return data.get("email")


def context(request) -> dict:
    """Template context: whether to offer the sign-up link."""
    return {"signup_open": settings.FLOWS_SIGNUP == "open"}
