"""The REST routes of broadcasts (``/api/broadcasts…``): announcements and polls, sent
and received, read, acknowledged and answered.

Mounted by :mod:`server.web` through :func:`broadcasts_routes`; documented in
``docs/api.md``. Each route hands over to the node's noticeboard
(:mod:`server.noticeboard`), which checks the rules and stores.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from .errors import ErrorCode, NotFound, Refused
from .protocol import MAX_INT
from .rest import Api, Caller, Created, int_param, json_body
from .settings import Json

__all__ = ["broadcasts_routes"]


def broadcasts_routes(api: Api) -> list[Route]:
    return [
        Route("/api/broadcasts", api(_broadcasts), methods=["GET"]),
        Route("/api/broadcasts", api(_create_broadcast), methods=["POST"]),
        Route("/api/broadcasts/audience", api(_broadcast_audience), methods=["GET"]),
        Route("/api/broadcasts/received", api(_broadcasts_received), methods=["GET"]),
        Route("/api/broadcasts/sent", api(_broadcasts_sent), methods=["GET"]),
        Route("/api/broadcasts/preview", api(_broadcast_preview), methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}", api(_broadcast), methods=["GET"]),
        Route("/api/broadcasts/{broadcast_id:int}/results", api(_broadcast_results),
              methods=["GET"]),
        Route("/api/broadcasts/{broadcast_id:int}/read", api(_read_broadcast),
              methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}/acknowledge", api(_acknowledge_broadcast),
              methods=["POST"]),
        Route("/api/broadcasts/{broadcast_id:int}/answers", api(_answer_poll),
              methods=["PUT"]),
        Route("/api/broadcasts/{broadcast_id:int}/remind", api(_remind_broadcast),
              methods=["POST"]),
    ]


async def _broadcasts(request: Request, caller: Caller) -> Json:
    return await caller.node.noticeboard.listing(caller.school_id, caller.user.id)


async def _broadcasts_received(request: Request, caller: Caller) -> Json:
    items, after = await caller.node.noticeboard.received_page(
        caller.school_id, caller.user.id, _before_param(request),
        int_param(request, "limit", 100, 1, 200))
    return {"items": items, "more": after is not None, "next": after}


async def _broadcasts_sent(request: Request, caller: Caller) -> Json:
    items, after = await caller.node.noticeboard.sent_page(
        caller.school_id, caller.user.id, _before_param(request),
        int_param(request, "limit", 100, 1, 200))
    return {"items": items, "more": after is not None, "next": after}


def _before_param(request: Request) -> str | None:
    raw = request.query_params.get("before")
    return None if raw in (None, "") else raw


async def _create_broadcast(request: Request, caller: Caller) -> Created:
    view, new = await caller.node.noticeboard.create(caller.school_id, caller.user.id,
                                                     await json_body(request))
    return Created({"broadcast": view}, new)


async def _broadcast_audience(request: Request, caller: Caller) -> Json:
    q = request.query_params.get("q")
    return await caller.node.noticeboard.scope(caller.school_id, caller.user.id,
                                               q.strip() if q is not None else None)


async def _broadcast_preview(request: Request, caller: Caller) -> Json:
    body = await json_body(request)
    if not isinstance(body, dict) or "to" not in body:
        raise Refused(ErrorCode.BAD_REQUEST, "Envoyez {\"to\": {...}} : le public à compter.",
                      params={"field": "to"})
    return await caller.node.noticeboard.preview(caller.school_id, caller.user.id, body["to"])


def _broadcast_id(request: Request) -> int:
    value = int(request.path_params["broadcast_id"])
    if value > MAX_INT:  # no row can have it, and SQLite would refuse to compare it
        raise NotFound(f"no broadcast {value} for you")  # the words of every other miss
    return value


async def _broadcast(request: Request, caller: Caller) -> Json:
    view = await caller.node.noticeboard.view(caller.school_id, caller.user.id,
                                              _broadcast_id(request))
    return {"broadcast": view}


async def _broadcast_results(request: Request, caller: Caller) -> Json:
    return await caller.node.noticeboard.results(caller.school_id, caller.user.id,
                                                 _broadcast_id(request))


async def _read_broadcast(request: Request, caller: Caller) -> Json:
    view = await caller.node.noticeboard.mark_read(caller.school_id, caller.user.id,
                                                   _broadcast_id(request), acknowledge=False)
    return {"broadcast": view}


async def _acknowledge_broadcast(request: Request, caller: Caller) -> Json:
    view = await caller.node.noticeboard.mark_read(caller.school_id, caller.user.id,
                                                   _broadcast_id(request), acknowledge=True)
    return {"broadcast": view}


async def _answer_poll(request: Request, caller: Caller) -> Json:
    body = await json_body(request)
    if not isinstance(body, dict) or "answers" not in body:
        raise Refused(ErrorCode.BAD_REQUEST,
                      "Envoyez {\"answers\": [...]} : une réponse par question.",
                      params={"field": "answers"})
    view = await caller.node.noticeboard.answer(caller.school_id, caller.user.id,
                                                _broadcast_id(request), body["answers"])
    return {"broadcast": view}


async def _remind_broadcast(request: Request, caller: Caller) -> Json:
    return await caller.node.noticeboard.remind(caller.school_id, caller.user.id,
                                                _broadcast_id(request))
