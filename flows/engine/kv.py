"""The flow's key-value store, offered to steps as the capabilities kv.get, kv.set, kv.delete.

Entries belong to one flow (every run and version of it shares them); an optional time to live
makes an entry read as missing once it has passed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from flows.capabilities import CapabilityContext, CapabilityError, register
from flows.models import Flow, KVEntry

MAX_KEY_LENGTH = 512


def _key(payload: Any) -> str:
    if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
        raise CapabilityError('the payload needs a "key" string')
    key = payload["key"]
    if not key or len(key) > MAX_KEY_LENGTH:
        raise CapabilityError(f"a key must be 1 to {MAX_KEY_LENGTH} characters long")
    return key


def _live(**where: Any):
    """The entries matching `where` that have not expired."""
    now = timezone.now()
    return KVEntry.objects.filter(**where).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


@register(
    "kv.get",
    description="Read a value of this flow's key-value store.",
    payload_doc={"key": "string"},
    result_doc="the stored JSON value, or null when missing or expired",
)
def kv_get(ctx: CapabilityContext, payload: Any) -> Any:
    entry = _live(flow_id=ctx.flow_id).filter(key=_key(payload)).first()
    return entry.value if entry else None


@register(
    "kv.set",
    description="Store a JSON value in this flow's key-value store, optionally expiring.",
    payload_doc={"key": "string", "value": "any JSON", "ttl_seconds": "integer, optional"},
    result_doc="true",
    writes=True,
)
def kv_set(ctx: CapabilityContext, payload: Any) -> bool:
    key = _key(payload)
    ttl = payload.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise CapabilityError("ttl_seconds must be a positive whole number of seconds")
    expires = timezone.now() + timedelta(seconds=ttl) if ttl else None
    size = len(json.dumps(payload.get("value"), separators=(",", ":")).encode())
    limit = settings.FLOWS_KV_VALUE_MAX_BYTES
    if size > limit:
        raise CapabilityError(
            f"the value is {size:,} bytes as JSON; an entry may hold at most {limit:,}"
        )
    with transaction.atomic():
        owner = Flow.objects.filter(pk=ctx.flow_id).values("owner_id")
        others = (
            _live(flow__owner_id__in=owner)
            .exclude(flow_id=ctx.flow_id, key=key)
            .aggregate(total=Sum("size"))["total"]
            or 0
        )
        quota = settings.FLOWS_KV_OWNER_MAX_BYTES
        if others + size > quota:
            raise CapabilityError(
                f"storing this value would make your flows' stored values {others + size:,} "
                f"bytes; the limit is {quota:,}: delete entries you no longer need, or let them "
                "expire (ttl_seconds)"
            )
        KVEntry.objects.update_or_create(
            flow_id=ctx.flow_id,
            key=key,
            defaults={"value": payload.get("value"), "expires_at": expires, "size": size},
        )
    return True


@register(
    "kv.delete",
    description="Delete a key of this flow's key-value store.",
    payload_doc={"key": "string"},
    result_doc="true when the key existed",
    writes=True,
)
def kv_delete(ctx: CapabilityContext, payload: Any) -> bool:
    key = _key(payload)
    existed = _live(flow_id=ctx.flow_id).filter(key=key).exists()
    KVEntry.objects.filter(flow_id=ctx.flow_id, key=key).delete()
    return existed
