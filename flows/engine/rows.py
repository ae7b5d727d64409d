"""INSERT and UPDATE of one row, written out: the engine stores a run and each of its steps with
these, on every run's path, where `Model.save` cost about three times the statement's own client
CPU (measured by bench/peers.py's workload: 0.8 ms against 0.3 ms for a step row's insert and
update). The values are the ones `save` would write (each field's `pre_save` and
`get_db_prep_save`), and its `pre_save` and `post_save` signals are sent when anything listens.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from django.db import DatabaseError, connection, models
from django.db.models import signals


@functools.lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], vendor: str) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})"
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields


def insert(obj: models.Model) -> None:
    """`obj.save(force_insert=True)` for a new row whose key the database assigns."""
    _signal(signals.pre_save, obj, None)
    sql, fields = _insert_sql(type(obj), connection.vendor)
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if connection.features.can_return_columns_from_insert:
            obj.pk = cursor.fetchone()[0]
        else:
            obj.pk = connection.ops.last_insert_id(cursor, obj._meta.db_table, obj._meta.pk.column)
    obj._state.adding = False
    obj._state.db = connection.alias
    _signal(signals.post_save, obj, None, created=True)


def update(obj: models.Model, names: Iterable[str]) -> None:
    """`obj.save(update_fields=names)`, which also fails when the row is gone."""
    names = frozenset(names)
    _signal(signals.pre_save, obj, names)
    quote = connection.ops.quote_name
    meta = obj._meta
    fields = [meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, obj.pk])
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
    _signal(signals.post_save, obj, names, created=False)


def _signal(signal, obj: models.Model, names: frozenset[str] | None, **extra) -> None:
    sender = type(obj)
    if signal.has_listeners(sender):
        signal.send(
            sender=sender,
            instance=obj,
            raw=False,
            using=connection.alias,
            update_fields=names,
            **extra,
        )
