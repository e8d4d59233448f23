"""Pushes to the channel layer: committed events, and live-only LLM text deltas."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def execution_group(execution_id: Any) -> str:
    return f"execution.{execution_id}"


def workflow_group(workflow_id: Any) -> str:
    return f"workflow.{workflow_id}"


def event_message(event: Any) -> dict:
    # Small on purpose: ids, kind and the (already truncated) payload; clients read the rest from the database.
    return {
        "type": "execution.event",
        "execution_id": str(event.execution_id),
        "seq": event.seq,
        "event_type": event.type,
        "node_id": event.node_id,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }


def event_committed(event: Any, *, workflow_id: Any) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = event_message(event)
    try:
        async_to_sync(layer.group_send)(execution_group(event.execution_id), message)
        async_to_sync(layer.group_send)(workflow_group(workflow_id), message)
    except Exception:
        # The event is stored: a client that missed the push catches up by seq.
        logger.warning("broadcast of event %s#%s failed", event.execution_id, event.seq, exc_info=True)


async def events_committed(events: list, *, workflow_id: Any) -> None:
    """The async twin of event_committed, for the engine (already on its event loop)."""
    layer = get_channel_layer()
    if layer is None:
        return
    for event in events:
        message = event_message(event)
        try:
            await layer.group_send(execution_group(event.execution_id), message)
            await layer.group_send(workflow_group(workflow_id), message)
        except Exception:
            logger.warning("broadcast of event %s#%s failed", event.execution_id, event.seq, exc_info=True)


async def text_delta(execution_id: Any, node_id: str, text: str) -> None:
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
