"""
`GET /api/v1/executions/<id>/events/`: a run's events. With `Accept: text/event-stream` a
Server-Sent Events stream (`id:` = seq, `event:` = type, `data:` = the event as JSON) that resumes
after `Last-Event-ID` (or `?after_seq=`), sends keep-alive comments and ends after the final
status; otherwise the stored events as JSON, a page at a time.

An async view, not a DRF one: a stream that lasts as long as a run must not hold a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from apps.executions.broadcast import execution_group
from apps.executions.streams import RunStream, stored_events_after, visible_execution, whole_number
from apps.users.authentication import request_principal

PAGE_DEFAULT = 500
PAGE_MAX = 1000
STATUS_OF_ERROR = {"not_authenticated": 401, "invalid_api_key": 401, "missing_scope": 403}


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    """The API's one error shape: `{"error": {"code", "message", "fields"}}`."""
    return JsonResponse({"error": {"code": code, "message": message, "fields": fields or {}}}, status=status)


def _whole_number(value: str | None, name: str) -> int | JsonResponse:
    if value is None or value == "":
        return 0
    if whole_number(value) is None:
        return error_response(400, "invalid", f"'{name}' must be a whole number, 0 or more.", {name: ["Not a number."]})
    return whole_number(value)


@require_GET
async def execution_events(request: HttpRequest, execution_id: str) -> HttpResponse:
    principal = await request_principal(request, scope="read")
    if principal.error:
        response = error_response(STATUS_OF_ERROR[principal.error], principal.error, principal.message)
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    run = await visible_execution(principal.user, execution_id)
    if run is None:
        return error_response(404, "not_found", "No such execution.")
    streaming = "text/event-stream" in request.headers.get("Accept", "")
    cursor_name = "Last-Event-ID" if streaming and "Last-Event-ID" in request.headers else "after_seq"
    cursor = request.headers.get(cursor_name) if cursor_name == "Last-Event-ID" else request.GET.get("after_seq")
    after = _whole_number(cursor, cursor_name)
    if isinstance(after, JsonResponse):
        return after
    if streaming:
        stream = RunStream(run["id"], after, ended=run["ended"])
        response = StreamingHttpResponse(_event_stream(stream), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response
    limit = _whole_number(request.GET.get("limit"), "limit")
    if isinstance(limit, JsonResponse):
        return limit
    limit = min(limit or PAGE_DEFAULT, PAGE_MAX)
    events = await stored_events_after(run["id"], after, limit=limit + 1)
    page = events[:limit]
    return JsonResponse(
        {
            "execution_id": str(run["id"]),
            "events": page,
            "next_after_seq": page[-1]["seq"] if page else after,
            "has_more": len(events) > limit,
        }
    )


def _sse(event: dict) -> str:
    return f"id: {event['seq']}\nevent: {event['event_type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def _event_stream(stream: RunStream) -> AsyncIterator[str]:
    """Stored events, then live ones from the run's group, exactly once each, until the final status."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = execution_group(stream.execution_id)
    # Join before reading, as the WebSocket consumer does: the cursor drops what arrives twice.
    await layer.group_add(group, channel)
    receiving: asyncio.Future | None = None
    try:
        yield "retry: 3000\n\n"
        for event in await stream.catch_up():
            yield _sse(event)
        while not stream.finished:
            # Never cancel a pending receive to time it out: a cancelled receive drops the
            # channel's subscription (channels-redis). Wait on it instead, and send a comment.
            receiving = receiving or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=settings.SSE_KEEPALIVE_SECONDS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            message, receiving = receiving.result(), None
            if message.get("type") == "execution.events":
                for event in await stream.take(message["events"]):
                    yield _sse(event)
    finally:
        if receiving is not None:
            receiving.cancel()
        await layer.group_discard(group, channel)
