"""Pushes to the channel layer: committed events, and live-only LLM text deltas."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

# How long a sender waits for the loop that sends (the server's or the process's sender loop).
SEND_TIMEOUT_SECONDS = 10


def execution_group(execution_id: Any) -> str:
    return f"execution.{execution_id}"


def workflow_group(workflow_id: Any) -> str:
    return f"workflow.{workflow_id}"


def event_message(event: Any) -> dict:
    # Small on purpose: ids, kind and the (already truncated) payload; clients read the rest from the database.
    return {
        "execution_id": str(event.execution_id),
        "seq": event.seq,
        "event_type": event.type,
        "node_id": event.node_id,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }


def event_committed(event: Any, *, workflow_id: Any) -> None:
    """Send a committed event from synchronous code (services called by views, admin, commands)."""
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer):
        server = _server_loop_elsewhere()
        if server is not None:
            handed = asyncio.run_coroutine_threadsafe(events_committed([event], workflow_id=workflow_id), server)
            try:
                handed.result(SEND_TIMEOUT_SECONDS)
            except TimeoutError:
                handed.cancel()
                logger.warning(
                    "event %s#%s was not sent within %s s; dropped", event.execution_id, event.seq, SEND_TIMEOUT_SECONDS
                )
        else:
            async_to_sync(events_committed)([event], workflow_id=workflow_id)
        return
    # A network layer keeps its connections per event loop: one long-lived loop for all sync
    # senders of this process, instead of a new loop (and Redis connection) per event.
    asyncio.run_coroutine_threadsafe(events_committed([event], workflow_id=workflow_id), _sender_loop())


_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    global _sender
    with _sender_lock:
        # A forked process (Dramatiq, gunicorn) must not use its parent's loop thread.
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


async def events_committed(events: list, *, workflow_id: Any) -> None:
    """
    The async twin of event_committed, for the engine (already on its event loop). Events that
    committed together travel together: one message per group, `{"type": "execution.events",
    "execution_id", "workflow_id", "events": [...]}` with the events in seq order.
    """
    layer = get_channel_layer()
    if layer is None or not events:
        return
    by_run: dict[str, list[dict]] = {}
    for event in events:
        by_run.setdefault(str(event.execution_id), []).append(event_message(event))
    for execution_id, messages in by_run.items():
        batch = {"type": "execution.events", "execution_id": execution_id, "workflow_id": workflow_id}
        batch["events"] = messages
        try:
            await layer.group_send(execution_group(execution_id), batch)
            await layer.group_send(workflow_group(workflow_id), batch)
        except Exception:
            first, last = messages[0]["seq"], messages[-1]["seq"]
            logger.warning("broadcast of events %s#%s-%s failed", execution_id, first, last, exc_info=True)


async def on_sender_loop(coroutine: Any) -> None:
    """
    Await `coroutine` on the loop that must run it. A network layer keeps its connections per
    event loop, and an engine run's loop lives only as long as the run: use the process's
    long-lived sender loop. The in-memory layer's queues belong to the loop its consumers wait
    on: in the embedded server, that is the server's loop.
    """
    layer = get_channel_layer()
    if layer is None:
        coroutine.close()
        return
    if isinstance(layer, InMemoryChannelLayer):
        server = _server_loop_elsewhere()
        if server is None:
            await coroutine
            return
    else:
        server = _sender_loop()
    # Bounded: a loop that stops between the check and the hand-over never runs the coroutine,
    # and a broadcast (best effort: clients reread from the database) must never hold a run.
    handed = asyncio.run_coroutine_threadsafe(coroutine, server)
    try:
        await asyncio.wait_for(asyncio.wrap_future(handed), SEND_TIMEOUT_SECONDS)
    except TimeoutError:
        handed.cancel()
        logger.warning("a broadcast was not sent within %s s; dropped", SEND_TIMEOUT_SECONDS)


_server_loop: asyncio.AbstractEventLoop | None = None


def register_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the ASGI entry point: the loop this process's consumers wait on."""
    global _server_loop
    _server_loop = loop


def _server_loop_elsewhere() -> asyncio.AbstractEventLoop | None:
    """The server's loop when it runs and the caller is not on it (a worker thread), else None."""
    loop = _server_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    return None if current is loop else loop


async def text_delta(execution_id: Any, node_id: str, text: str) -> None:
    await on_sender_loop(_text_delta(execution_id, node_id, text))


async def _text_delta(execution_id: Any, node_id: str, text: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            execution_group(execution_id),
            {"type": "execution.delta", "execution_id": str(execution_id), "node_id": node_id, "text": text},
        )
    except Exception:
        logger.debug("text delta broadcast failed", exc_info=True)
