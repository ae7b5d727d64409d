"""Live run events over WebSockets: /ws/runs/<id>/ (one run) and /ws/flows/<id>/ (all runs of a
flow). Only the flow's owner is admitted; anyone else is closed with code 4403.

A client that connects mid-run first gets the lines logged so far, then the live ones, in order
and without duplicates: the consumer joins the group before reading the saved lines (lines are
saved before they are sent), then drops live lines it already sent from the database.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flows.engine import broadcast, logs
from flows.models import Flow, LogLine, Run, StepRun

FORBIDDEN = 4403
BACKLOG_LIMIT = 5000


@database_sync_to_async
def _owned_run(user, run_id: int) -> Run | None:
    if user is None:
        return None
    return Run.objects.owned_by(user).filter(pk=run_id).first()


@database_sync_to_async
def _owned_flow(user, flow_id: int) -> Flow | None:
    if user is None:
        return None
    return Flow.objects.owned_by(user).filter(pk=flow_id).first()


@database_sync_to_async
def _backlog(run_id: int) -> tuple[list[dict], list[dict], dict | None]:
    run = Run.objects.get(pk=run_id)
    lines = [
        logs.log_event(run_id, line)
        for line in LogLine.objects.filter(run_id=run_id).order_by("seq")[:BACKLOG_LIMIT]
    ]
    rows = list(StepRun.objects.filter(run_id=run_id))
    steps = [logs.step_event(s) for s in rows]
    # The trace of a step still running (an agent's turns so far): the page shows the rest.
    steps += [
        logs.trace_event(s, entry, seq)
        for s in rows
        if s.status == StepRun.Status.RUNNING
        for seq, entry in enumerate(s.trace, 1)
    ]
    return lines, steps, logs.run_event(run) if run.is_finished else None


class _Consumer(AsyncJsonWebsocketConsumer):
    group = ""

    async def admit(self) -> bool:
        raise NotImplementedError

    async def connect(self) -> None:
        broadcast.attach_loop(asyncio.get_running_loop())
        if not await self.admit():
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_backlog()

    async def send_backlog(self) -> None:
        pass

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs) -> None:
        pass  # clients only listen

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a thread hop) before every handler. Run
        # events only go out on the socket, without the database: they skip that, which halves
        # the server's cost of a live event.
        if message.get("type") == broadcast.MESSAGE_TYPE:
            await self.flows_events(message)
        else:
            await super().dispatch(message)

    async def flows_events(self, message: dict[str, Any]) -> None:
        for event in message["events"]:
            await self.forward(event)

    async def forward(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


class RunConsumer(_Consumer):
    async def admit(self) -> bool:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.last_seq = 0
        self.sent_steps: set[tuple] = set()
        self.final_sent = False
        run = await _owned_run(self.scope.get("user"), self.run_id)
        if run is None:
            return False
        self.group = logs.run_group(self.run_id)
        return True

    async def send_backlog(self) -> None:
        lines, steps, final = await _backlog(self.run_id)
        for event in lines:
            await self.send_json(event)
            self.last_seq = event["seq"]
        for event in steps:
            await self.forward(event)
        if final is not None:
            self.final_sent = True
            await self.send_json(final)

    async def forward_step(self, event: dict[str, Any]) -> None:
        key = (event.get("scope", ""), event["step"], event["attempt"], event["status"])
        if key not in self.sent_steps:
            self.sent_steps.add(key)
            await self.send_json(event)

    async def forward(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "log":
            if event["seq"] <= self.last_seq:
                return
            self.last_seq = event["seq"]
            await self.send_json(event)
        elif kind == "step":
            await self.forward_step(event)
        elif kind == "trace":
            # Entries the page has already are dropped by their id (static/js/live.js).
            await self.send_json(event)
        elif kind == "run":
            if self.final_sent:
                return
            self.final_sent = event["status"] in Run.FINISHED
            await self.send_json(event)


class FlowConsumer(_Consumer):
    async def admit(self) -> bool:
        flow_id = int(self.scope["url_route"]["kwargs"]["flow_id"])
        flow = await _owned_flow(self.scope.get("user"), flow_id)
        if flow is None:
            return False
        self.group = logs.flow_group(flow_id)
        return True
