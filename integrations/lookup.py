"""The integrations app's answers to what the flows layer asks of connections
(flows.connections.Source), registered at start-up."""

from __future__ import annotations

from collections.abc import Iterable

from flows.connections import BoundConnection
from flows.crypto import SecretsUnreadable
from integrations.models import Connection


class ConnectionLookup:
    def label(self, service: str) -> str:
        from integrations.services import SERVICES

        known = SERVICES.get(service)
        return known.title.split(" (")[0] if known else service

    def services(self, owner, ids: Iterable[int]) -> dict[int, str]:
        if owner is None:
            return {}
        rows = Connection.objects.owned_by(owner).filter(pk__in=list(ids))
        return dict(rows.values_list("pk", "service"))

    def of_service(self, owner, service: str) -> list[int]:
        rows = Connection.objects.owned_by(owner).filter(service=service).order_by("pk")
        return list(rows.values_list("pk", flat=True))

    def bound(self, owner_id: int, ids: Iterable[int]) -> dict[int, BoundConnection]:
        bound: dict[int, BoundConnection] = {}
        for connection in Connection.objects.filter(owner_id=owner_id, pk__in=list(ids)):
            try:
                secrets = connection.get_secrets()
            except SecretsUnreadable as exc:
                bound[connection.pk] = BoundConnection(connection.service, {}, None, str(exc))
                continue
            bound[connection.pk] = BoundConnection(
                connection.service, connection.config or {}, secrets
            )
        return bound
