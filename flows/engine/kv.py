"""The flow's key-value store, offered to steps as the capabilities kv.get, kv.set, kv.delete.

Entries belong to one flow (every run and version of it shares them); an optional time to live
makes an entry read as missing once it has passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from flows.capabilities import CapabilityContext, CapabilityError, register
from flows.models import KVEntry

MAX_KEY_LENGTH = 512


def _key(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
        raise CapabilityError('the payload needs a "key" string')
    key = payload["key"]
    if not key or len(key) > MAX_KEY_LENGTH:
        raise CapabilityError(f"a key must be 1 to {MAX_KEY_LENGTH} characters long")
    return key


def _live(ctx: CapabilityContext):
    now = timezone.now()
    return KVEntry.objects.filter(flow_id=ctx.flow_id).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


@register(
    "kv.get",
    description="Read a value of this flow's key-value store.",
    payload_doc={"key": "string"},
    result_doc="the stored JSON value, or null when missing or expired",
)
def kv_get(ctx: CapabilityContext, payload: Any) -> Any:
    entry = _live(ctx).filter(key=_key(payload)).first()
    return entry.value if entry else None


@register(
    "kv.set",
    description="Store a JSON value in this flow's key-value store, optionally expiring.",
    payload_doc={"key": "string", "value": "any JSON", "ttl_seconds": "integer, optional"},
    result_doc="true",
)
def kv_set(ctx: CapabilityContext, payload: Any) -> bool:
    key = _key(payload)
    ttl = payload.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise CapabilityError("ttl_seconds must be a positive whole number of seconds")
    expires = timezone.now() + timedelta(seconds=ttl) if ttl else None
    KVEntry.objects.update_or_create(
        flow_id=ctx.flow_id,
        key=key,
        defaults={"value": payload.get("value"), "expires_at": expires},
    )
    return True


@register(
    "kv.delete",
    description="Delete a key of this flow's key-value store.",
    payload_doc={"key": "string"},
    result_doc="true when the key existed",
)
def kv_delete(ctx: CapabilityContext, payload: Any) -> bool:
    key = _key(payload)
    existed = _live(ctx).filter(key=key).exists()
    KVEntry.objects.filter(flow_id=ctx.flow_id, key=key).delete()
    return existed
