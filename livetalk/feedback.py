"""``POST /feedback``: store a finished conversation's record and grade it.

Two request forms (see the HTTP contract):

* ``multipart/form-data`` from client apps: ``log`` (JSON list of ``{role, text}`` or
  ``User:`` / ``AI:`` lines; a form field or a file part), optional ``audio`` (sniffed:
  WAV, WebM, OGG, MP3, FLAC), optional ``session_id`` and ``scenario`` (without it, the first
  scenario in the log's language, so an English log gets an English report);
* ``application/json`` ``{"session_id": ...}`` for a conversation the relay recorded: only its
  learner may ask (anyone else gets the same ``404`` as for an unknown id), and the grade is put
  in their history (:mod:`livetalk.learners`).

Every request gets its own folder, ``<conversation folder>/feedback-<time>-<random>/``,
so concurrent requests (even for one session id) never share a name. Uploads are
written by a bounded thread pool while Gemini grades; the answer names only objects
that were written: ``200`` when graded, ``502`` when grading failed (the upload is
stored and the body says where), ``503`` when storage failed (nothing is claimed),
``415`` when the audio cannot be read (a WAV whose structure is broken, checked before
anything is stored, or audio the grading service could not decode: what was stored of
the upload is removed again).

Measured beside the grade (``evaluation.metrics``, ``outcome``, ``evidence_refs``): a
recorded conversation is read back whole (every segment, :mod:`~livetalk.recording.readback`)
and measured from the activity its recorder stored; an upload from its stereo WAV and its
log (:func:`~livetalk.analytics.measure_upload`). The grader gets the metrics and the outcome
as facts; each evidence quote is matched to the transcript line it comes from.

Refusals are raised as :class:`~livetalk.refusals.ClientRefusal` and answered app-wide.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import json
import logging
import secrets
import time
from concurrent.futures import Future
from typing import Any, BinaryIO

from flask import Blueprint, current_app, jsonify, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

import prompts

from . import grading
from .analytics import CorruptWav, Utterance, measure_conversation, measure_upload
from .auth import current_learner
from .conversation_log import LogError, is_json_log, log_language, parse_log
from .evidence import Line, evidence_refs
from .grading import AudioRejected, GradingFailed, Recording, Turn
from .realtime import request_ip
from .refusals import ClientRefusal, answer
from .report import evaluation_json, render_markdown
from .recording import check_session_id, conversation_prefix
from .recording.readback import RecordedConversation, read_conversation
from .storage import StorageError
from .storage.joined import open_joined, piece_length
from .wav import SNIFF_BYTES, AudioType, sniff_audio

log = logging.getLogger("livetalk.feedback")

MAX_LOG_BYTES = 2 * 1024 * 1024  # the conversation log, as a form field or file part
MAX_JSON_BODY_BYTES = 64 * 1024  # the {"session_id"} form
GRADABLE_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3", "ogg": "audio/ogg", "flac": "audio/flac"}  # Gemini's names
RECORDING_NOTE = "It is stereo: the left channel is the user, the right channel is the AI customer."
RESUMED_NOTE = "The connection was resumed {n} time(s) during the conversation; a short silence marks each."
GRADING_GAP_S = 1.0  # the grader hears a reconnection as at most this much silence

feedback_bp = Blueprint("feedback", __name__)
feedback_bp.register_error_handler(ClientRefusal, answer)


# --- the route ---------------------------------------------------------------------------------


@feedback_bp.post("/feedback")
def feedback():
    services = current_app.extensions["livetalk"]
    _admit(services)
    kind = request.mimetype
    if kind == "application/json":
        return _from_session(services)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return _from_upload(services)
    raise ClientRefusal(415, "unsupported_media_type",
                        "send multipart/form-data (log, audio) or application/json {\"session_id\": ...}")


@feedback_bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    return answer(ClientRefusal(413, "too_large", "the request or one of its fields is over the size limit"))


def _admit(services) -> None:
    settings = services.settings
    if services.draining.is_set():
        raise ClientRefusal(503, "draining", "the server is shutting down; try again shortly")
    _check_rate(services)
    request.max_content_length = settings.max_request_bytes
    request.max_form_memory_size = MAX_LOG_BYTES + 1024
    if (request.content_length or 0) > settings.max_request_bytes:
        raise ClientRefusal(413, "too_large", f"the request is over {settings.max_request_bytes} bytes")


def _check_rate(services) -> None:
    decision = services.admission.allow_feedback(request_ip(services))
    if not decision.allowed:
        raise ClientRefusal(429, "rate_limited", "too many feedback requests; wait a minute",
                            retry_after=max(decision.retry_after_whole_s, 1))


# --- form 1: an upload from a client app -----------------------------------------------------


def _from_upload(services):
    form, files = request.form, request.files
    session_id = _session_id(form.get("session_id"), required=False) or _new_session_id()
    named = _scenario(form.get("scenario")) if form.get("scenario") else None
    raw_log, log_ext = _read_log(form.get("log"), files.get("log"))
    try:
        turns = parse_log(raw_log.decode("utf-8-sig"))
    except LogError as exc:
        raise ClientRefusal(400, "invalid_log", str(exc)) from None
    scenario = named or prompts.scenario_for_language(log_language(turns))
    audio = _read_audio(files.get("audio"), services.grader.inline_audio_max_bytes)
    metrics = _upload_metrics(turns, audio, scenario)
    folder = _request_folder(conversation_prefix(session_id, _utcnow()))
    storage = services.storage
    keys = {"log": f"{folder}/log.{log_ext}"}
    writes: dict[str, Future] = {
        "log": services.write(storage.put, keys["log"], raw_log,
                              "application/json" if log_ext == "json" else "text/plain; charset=utf-8"),
    }
    recording = None
    if audio is not None:
        kind, data = audio
        keys["audio"] = f"{folder}/audio.{kind.ext}"
        writes["audio"] = services.write(storage.put, keys["audio"], data, kind.mime)
        recording = _upload_recording(kind, data, storage, keys["audio"], writes["audio"])
    job = _Job(session_id, scenario, folder, turns, recording, lines=[Line(t.role, t.text) for t in turns],
               metrics=metrics, uploaded=list(keys.values()))
    return _grade_and_store(services, job, writes)


def _upload_metrics(turns: list[Turn], audio: tuple[AudioType, bytes | BinaryIO] | None,
                    scenario: prompts.Scenario) -> dict[str, Any] | None:
    """What the upload supports: timings from a stereo WAV, questions and fillers from the log.

    A WAV whose structure is broken is refused here (415), before anything is stored.
    """
    data = audio[1] if audio is not None else None
    try:
        return dict(measure_upload([Utterance(t.role, t.text) for t in turns], data, language=scenario.language))
    except CorruptWav as exc:
        raise ClientRefusal(415, "unsupported_audio", f"the audio could not be read: {exc}") from None
    except Exception:  # measuring is a bonus: the grade goes on without it
        log.exception("could not measure an upload")
        return None
    finally:
        if data is not None and not isinstance(data, bytes):
            data.seek(0)


def _read_log(field: str | None, part: FileStorage | None) -> tuple[bytes, str]:
    """The log's bytes exactly as sent, and ``json`` or ``txt``."""
    if part is not None and part.filename is not None:
        raw = part.stream.read(MAX_LOG_BYTES + 1)
    elif field is not None:
        raw = field.encode()
    else:
        raise ClientRefusal(400, "missing_log", "the log field is required (or send JSON with session_id)")
    if len(raw) > MAX_LOG_BYTES:
        raise ClientRefusal(413, "too_large", f"log is over {MAX_LOG_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClientRefusal(400, "invalid_log", "log must be UTF-8 text") from None
    if not text.strip():
        raise ClientRefusal(400, "invalid_log", "log is empty")
    return raw, "json" if is_json_log(text) else "txt"


def _read_audio(part: FileStorage | None, inline_max_bytes: int) -> tuple[AudioType, bytes | BinaryIO] | None:
    """The sniffed type and the content (bytes when small enough to grade inline, else the stream)."""
    if part is None:
        return None
    stream = part.stream
    size = _size(stream)
    if size == 0:
        if not part.filename:  # a form's file input left empty
            return None
        raise ClientRefusal(400, "invalid_audio", "audio is empty")
    kind = sniff_audio(stream.read(SNIFF_BYTES))
    stream.seek(0)
    if kind is None:
        raise ClientRefusal(415, "unsupported_audio", "audio must be WAV, WebM/Opus, OGG, MP3 or FLAC")
    if size <= inline_max_bytes:
        return kind, stream.read()
    return kind, stream


def _size(stream: BinaryIO) -> int:
    position = stream.tell()
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(position)
    return size


def _upload_recording(kind: AudioType, data: bytes | BinaryIO, storage, key: str, written: Future):
    """What grading attaches: the bytes in hand, or (large) the stored copy once written."""
    mime = GRADABLE_AUDIO.get(kind.name)
    if mime is None:  # e.g. WebM: stored, but Gemini does not take it; the log is graded alone
        return None
    if isinstance(data, bytes):
        return Recording(mime, len(data), lambda: io.BytesIO(data))

    def open_stored() -> BinaryIO:
        written.result()
        return storage.open_read(key)

    return Recording(mime, _size(data), open_stored)


# --- form 2: a conversation the relay recorded -----------------------------------------------


def _from_session(services):
    if (request.content_length or 0) > MAX_JSON_BODY_BYTES:
        raise ClientRefusal(413, "too_large", f"the JSON body is over {MAX_JSON_BODY_BYTES} bytes")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ClientRefusal(400, "invalid_json", 'the body must be a JSON object like {"session_id": "..."}')
    session_id = _session_id(body.get("session_id"), required=True)
    storage = services.storage
    conversation = _storage_call(read_conversation, storage, session_id)
    owner = conversation.index.get("learner_id") if conversation is not None else None
    mine = owner is None or owner == current_learner().id  # None: recorded before learners existed
    if conversation is None or not conversation.segments or not mine:
        raise ClientRefusal(404, "unknown_session", f"no recorded conversation has session_id {session_id!r}")
    scenario = _scenario(conversation.scenario_id, fallback=True)  # the recording's own, never the client's
    lines = conversation.lines()
    recording = _storage_call(_recorded_audio, storage, conversation)
    if not lines and recording is None:
        raise ClientRefusal(400, "empty_conversation", "the recorded conversation has nothing to grade")
    first = conversation.segments[0]
    writes = {"log": _done(storage.uri(first.meta.get("transcript") or f"{first.folder}/transcript.jsonl")),
              "audio": _done(storage.uri(first.audio_key) if first.audio_key else None)}
    job = _Job(session_id, scenario, _request_folder(conversation.prefix), [Turn(l.role, l.text) for l in lines],
               recording, lines=lines, metrics=_storage_call(_recorded_metrics, storage, conversation, scenario),
               outcome=conversation.outcome(), outcome_known=True, owner=owner, pointer=conversation.index)
    return _grade_and_store(services, job, writes)


def _recorded_audio(storage, conversation: RecordedConversation) -> Recording | None:
    """Every segment's audio as one WAV streamed from storage (a reconnection heard as a short pause)."""
    pieces = conversation.audio_pieces(storage, max_gap_s=GRADING_GAP_S)
    if pieces is None:
        return None
    resumed = len(conversation.segments) - 1
    note = RECORDING_NOTE + (" " + RESUMED_NOTE.format(n=resumed) if resumed else "")
    return Recording("audio/wav", sum(map(piece_length, pieces)), lambda: open_joined(storage, pieces), note)


def _recorded_metrics(storage, conversation: RecordedConversation,
                      scenario: prompts.Scenario) -> dict[str, Any] | None:
    """Every segment measured as one conversation, from the activity its recorder stored."""
    try:
        return dict(measure_conversation(conversation.parts(storage), language=scenario.language))
    except StorageError:
        raise
    except Exception:  # measuring is a bonus: the grade goes on without it
        log.exception("could not measure %s", conversation.session_id)
        return None


def _storage_call(fn, *args):
    try:
        return fn(*args)
    except StorageError as exc:
        raise _unavailable() from exc


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


# --- shared: grade while the writes run, then answer -------------------------------------------


@dataclasses.dataclass
class _Job:
    session_id: str
    scenario: prompts.Scenario
    folder: str  # this request's own folder
    turns: list[Turn]
    recording: Recording | None
    lines: list[Line]  # what evidence quotes are matched to (times in conversation time, when known)
    metrics: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    outcome_known: bool = False  # False: the form cannot know (an upload), so the grader is not told
    uploaded: list[str] = dataclasses.field(default_factory=list)  # keys this request writes (an upload)
    owner: str | None = None  # the learner whose history gets the grade
    pointer: dict[str, Any] | None = None  # the recording's session index entry

    def facts(self) -> dict[str, Any] | None:
        """What the grader is told as measured facts: the metrics (no timeline) and the outcome."""
        facts = {k: v for k, v in (self.metrics or {}).items() if k != "timeline"}
        if self.outcome_known:
            name = next((k for k, v in (self.outcome or {}).items() if v is True), None)
            facts["outcome"] = {"name": name, "details": self.outcome["details"]} if name else None
        return facts or None


def _grade_and_store(services, job: _Job, writes: dict[str, Future]):
    evaluation, failure = None, None
    started = time.monotonic()
    try:
        evaluation = _grade(services, job)
    except AudioRejected as exc:
        _discard(services.storage, job, writes)
        raise ClientRefusal(415, "unsupported_audio", str(exc)) from None
    except GradingFailed as exc:
        failure = exc
    except StorageError as exc:  # reading a large recording back from storage
        failure = GradingFailed("the recording could not be read for grading")
        log.warning("grading input unavailable: %s", type(exc).__name__)
    except Exception:  # the boundary: whatever broke, the upload is still answered for
        log.exception("grading crashed for %s", job.session_id)
        failure = GradingFailed("internal grading error")
    services.metrics.grading_finished(time.monotonic() - started, failed=failure is not None)
    stored = {"log": None, "audio": None, **_settle(writes), "feedback": None}
    if failure is not None:
        raise ClientRefusal(502, "grading_failed", f"grading failed: {failure}; the conversation is stored",
                            session_id=job.session_id, stored=stored)
    measured = {"metrics": job.metrics, "outcome": job.outcome,
                "evidence_refs": evidence_refs(evaluation.criteria, job.lines)}
    report = render_markdown(evaluation, job.scenario, metrics=job.metrics, outcome=job.outcome)
    result = evaluation_json(evaluation, **measured)
    stored["feedback"] = _store_results(services, job, result, report)
    if job.owner is not None:
        _file_grade(services, job, result)
    return jsonify({"session_id": job.session_id, "feedback": report, "evaluation": result, "stored": stored})


def _grade(services, job: _Job) -> grading.Evaluation:
    """The grade; a recording the grading service cannot decode is left out (the relay's own, then graded
    from its transcript and facts) or refused (an upload: raises :class:`AudioRejected`)."""
    grade = functools.partial(services.grader.grade, services.grading_client(), scenario=job.scenario,
                              turns=job.turns, facts=job.facts())
    try:
        return grade(recording=job.recording)
    except AudioRejected:
        if job.uploaded:
            raise
        log.warning("the recording of %s could not be decoded for grading; graded without it", job.session_id)
        return grade(recording=None)


def _discard(storage, job: _Job, writes: dict[str, Future]) -> None:
    """Remove what this request stored of an upload that turned out unreadable (it was never accepted)."""
    for future in writes.values():
        future.exception()  # wait: a write still running would land after the delete
    for key in job.uploaded:
        try:
            storage.delete(key)
        except StorageError:
            log.warning("could not remove an unreadable upload of %s", job.session_id)


def _settle(writes: dict[str, Future]) -> dict[str, str | None]:
    """Wait for every write; their URIs, or 503 if any failed (then nothing is claimed)."""
    results, failed = {}, None
    for name, future in writes.items():
        try:
            results[name] = future.result()
        except StorageError as exc:
            failed = failed or exc
    if failed is not None:
        raise _unavailable() from failed
    return results


def _store_results(services, job: _Job, evaluation: dict[str, Any], report: str) -> str | None:
    """Write evaluation.json and feedback.md; the report's URI, or None if it could not be written."""
    record = {"session_id": job.session_id, "scenario": job.scenario.id, "graded_at": _utcnow().isoformat(),
              "grader": {"engine": services.engines.grader_name(), "model": services.grader.model},
              "evaluation": evaluation}
    storage = services.storage
    evaluation_write = services.write(storage.put, f"{job.folder}/evaluation.json",
                                      json.dumps(record, ensure_ascii=False, indent=1).encode(), "application/json")
    report_write = services.write(storage.put, f"{job.folder}/feedback.md", report.encode(),
                                  "text/markdown; charset=utf-8")
    try:
        evaluation_write.result()
        return report_write.result()
    except StorageError:
        log.warning("the grade of %s was returned but could not be stored", job.session_id)
        return None


def _file_grade(services, job: _Job, evaluation: dict[str, Any]) -> None:
    """Put the grade in the owner's history (a failure there leaves the answer as it is)."""
    try:
        services.learner_index().record_grade(job.owner, job.session_id, evaluation,
                                              graded_at=_utcnow().isoformat(), pointer=job.pointer)
    except StorageError:
        log.warning("the grade of %s could not be put in its learner's history", job.session_id)


def _unavailable() -> ClientRefusal:
    return ClientRefusal(503, "storage_unavailable", "conversation storage is unavailable; nothing was stored. "
                         "Try again shortly.")


# --- small helpers -------------------------------------------------------------------------------


def _session_id(value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ClientRefusal(400, "invalid_session_id", "session_id is required")
        return None
    try:
        return check_session_id(value)
    except ValueError:
        raise ClientRefusal(400, "invalid_session_id",
                            "session_id must be 1-128 letters, digits, '-' or '_'") from None


def _scenario(value: Any, *, fallback: bool = False) -> prompts.Scenario:
    scenario = prompts.get_scenario(value if isinstance(value, str) else None)
    if scenario is None and fallback:
        scenario = prompts.get_scenario(None)
    if scenario is None:
        raise ClientRefusal(400, "unknown_scenario", f"scenario {str(value)[:64]!r} is not offered by this server")
    return scenario


def _request_folder(conversation_folder: str) -> str:
    return f"{conversation_folder}/feedback-{_utcnow():%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"


def _new_session_id() -> str:
    return f"{_utcnow():%Y%m%dT%H%M%S}Z-{secrets.token_hex(8)}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

