"""``/api``: the caller's own learner record, their conversations, and (administrators) everyone's.

=======================================================  ==================================================
route                                                    answer
=======================================================  ==================================================
``GET /api/me``                                          who the caller is, their limits and today's use
``GET /api/conversations?limit=&cursor=``                their conversations, newest first
``GET /api/conversations/<id>``                          one of them: transcript, evaluation, audio URL
``GET /api/conversations/<id>/audio``                    its recording (``audio/wav``, ``Range`` → ``206``)
``DELETE /api/conversations/<id>``                       remove every object of it (``204``)
``GET /api/admin/conversations?scenario=&since=&…``      administrators: every learner's, filtered
=======================================================  ==================================================

A conversation that is not the caller's answers ``404`` exactly as one that does not exist (an
administrator may read and delete any). Every error is ``{"error": {"code", "message"}}``; storage
trouble is ``503``. Responses are ``Cache-Control: no-store``: they are personal.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, jsonify, request, url_for

from . import history
from .auth import current_learner, is_admin_request
from .learners import DEFAULT_PAGE, MAX_PAGE, Search, public_entry
from .ranges import StoredBody, range_response
from .recording.readback import read_conversation
from .recording import check_session_id
from .refusals import ClientRefusal, answer
from .storage import StorageError

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("livetalk.api")

api_bp = Blueprint("api", __name__, url_prefix="/api")
api_bp.register_error_handler(ClientRefusal, answer)

MAX_FILTER_CHARS = 200


def _not_found() -> ClientRefusal:
    return ClientRefusal(404, "not_found", "no such conversation")


@api_bp.errorhandler(StorageError)
def _storage_down(_exc: StorageError):
    return answer(ClientRefusal(503, "storage_unavailable", "conversation storage is unavailable; try again shortly"))


@api_bp.after_request
def _personal(response):
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the caller ------------------------------------------------------------------------------


@api_bp.get("/me")
def me():
    services = _services()
    learner, settings = current_learner(), services.settings
    usage = services.quotas.usage(learner.id)
    return jsonify({
        "learner": {"id": learner.id, "kind": learner.kind, "email": learner.email},
        "limits": {"concurrent": settings.learner_max_concurrent, "daily_seconds": _whole(settings.learner_daily_s)},
        "usage_today": {"conversations": usage.conversations, "seconds": round(usage.seconds, 1),
                        "concurrent": usage.concurrent},
        "resets_in_s": round(usage.resets_in_s),
        "admin": is_admin_request(),
    })


# --- their conversations ---------------------------------------------------------------------


@api_bp.get("/conversations")
def conversations():
    page = _services().learner_index().page(current_learner().id, limit=_limit(), cursor=_cursor())
    return jsonify({"conversations": [public_entry(e) for e in page.entries], "next": page.next})


@api_bp.get("/conversations/<session_id>")
def conversation(session_id: str):
    storage = _services().storage
    found = _visible(session_id)
    details = history.details(storage, found)
    evaluation, report = history.grade(storage, found)
    has_audio = history.has_audio(found)
    return jsonify({
        **details, "evaluation": evaluation, "feedback": report,
        "audio_url": url_for("api.audio", session_id=session_id) if has_audio else None,
        "mine": found.owner == current_learner().id,
    })


@api_bp.get("/conversations/<session_id>/audio")
def audio(session_id: str):
    storage = _services().storage
    _visible(session_id)  # 404 unless the caller may see it
    # In conversation time: segments at their own start, the gaps between them silent, as the timeline and
    # the evidence times have it.
    recorded = read_conversation(storage, session_id)
    pieces = recorded.audio_pieces(storage) if recorded is not None else None
    if pieces is None:
        raise ClientRefusal(404, "no_recording", "this conversation has no playable recording")
    return range_response(StoredBody(storage, pieces), range_header=request.headers.get("Range"),
                          if_range=request.headers.get("If-Range"), mimetype="audio/wav")


@api_bp.delete("/conversations/<session_id>")
def delete(session_id: str):
    found = _visible(session_id)
    removed = history.delete(_services().storage, found)
    log.info("conversation deleted", extra={"fields": {"session_id": session_id, "objects": removed}})
    return "", 204


# --- administrators ----------------------------------------------------------------------------


@api_bp.get("/admin/conversations")
def all_conversations():
    if not is_admin_request():
        raise ClientRefusal(404, "not_found", "no such route")
    query = Search(scenario=_text("scenario"), since=_day("since"), until=_day("until"),
                   learner=(_text("learner") or "").lower() or None,
                   min_score=_score("min_score"), max_score=_score("max_score"))
    page = _services().learner_index().search(query, limit=_limit(), cursor=_cursor())
    return jsonify({"conversations": [{**public_entry(e), "learner": {"id": e["learner_id"],
                                                                      "email": e.get("learner_email")}}
                                      for e in page.entries], "next": page.next})


# --- helpers -----------------------------------------------------------------------------------


def _services() -> Services:
    return current_app.extensions["livetalk"]


def _visible(session_id: str) -> history.Conversation:
    """The conversation if the caller may see it; 404 otherwise, whatever the reason."""
    try:
        check_session_id(session_id)
    except ValueError:
        raise _not_found() from None
    learner = current_learner()
    found = history.find(_services().storage, session_id, learner=learner)
    if found is None or not found.visible_to(learner, admin=is_admin_request()):
        raise _not_found()
    return found


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ClientRefusal(400, "bad_request", f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _cursor() -> str | None:
    raw = request.args.get("cursor") or None
    if raw is None:
        return None
    try:
        return check_session_id(raw)
    except ValueError:
        raise ClientRefusal(400, "bad_request", "cursor must be the `next` value of an earlier page") from None


def _text(name: str) -> str | None:
    raw = (request.args.get(name) or "").strip()
    if len(raw) > MAX_FILTER_CHARS:
        raise ClientRefusal(400, "bad_request", f"{name} is over {MAX_FILTER_CHARS} characters")
    return raw or None


def _day(name: str) -> str | None:
    raw = _text(name)
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw).strftime("%Y%m%d")
    except ValueError:
        raise ClientRefusal(400, "bad_request", f"{name} must be a date like 2025-01-31") from None


def _score(name: str) -> float | None:
    raw = _text(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise ClientRefusal(400, "bad_request", f"{name} must be a number from 0 to 100")
    return value


def _whole(value: float) -> Any:
    return int(value) if float(value).is_integer() else value
