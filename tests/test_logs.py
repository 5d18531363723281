"""livetalk.logs: one Cloud Logging JSON object per line, trace and conversation ids, no secrets."""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import re
import threading
from types import SimpleNamespace

import pytest

from livetalk import logs
from livetalk.scrub import REDACTED

FAKE_KEY = "FAKE-gemini-key-logs-test-0123456789abcdef"
TRACE_ID = "105445aa7843bc8bf206b12000100000"


@pytest.fixture()
def restore_logging():
    """Put the root and gunicorn loggers back as they were after the test."""
    names = ("", "gunicorn.error", "gunicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture()
def stream(restore_logging, monkeypatch):
    """JSON logging configured into a buffer; returns a function that parses the lines so far."""
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    buffer = io.StringIO()
    logs.configure_logging("DEBUG", stream=buffer, secrets=(FAKE_KEY,), project="demo-project")

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    lines.raw = buffer.getvalue  # type: ignore[attr-defined]
    return lines


def test_each_record_is_one_json_line_with_cloud_logging_keys(stream):
    """A record becomes one JSON object with severity, message, RFC 3339 time, logger and source."""
    logging.getLogger("livetalk.test").warning("hello %s", "world")
    (entry,) = stream()
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hello world"
    assert entry["logger"] == "livetalk.test"
    assert dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).tzinfo is not None
    assert entry["time"].endswith("Z")
    assert entry[logs.SOURCE_KEY]["function"] == "test_each_record_is_one_json_line_with_cloud_logging_keys"
    assert "session_id" not in entry and logs.TRACE_KEY not in entry


@pytest.mark.parametrize(
    ("level", "severity"),
    [(logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.WARNING, "WARNING"),
     (logging.ERROR, "ERROR"), (logging.CRITICAL, "CRITICAL"), (25, "INFO"), (5, "DEFAULT")],
)
def test_severity_names(level, severity):
    """Python levels map to Cloud Logging's severity names (in-between levels round down)."""
    assert logs.severity(level) == severity


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"{TRACE_ID}/1;o=1", (TRACE_ID, "0000000000000001")),
        (f"{TRACE_ID}/12345678901234567890;o=0", (TRACE_ID, "ab54a98ceb1f0ad2")),
        (f"{TRACE_ID.upper()}/255", (TRACE_ID, "00000000000000ff")),
        (TRACE_ID, (TRACE_ID, None)),
        (f"{TRACE_ID}/0;o=1", (TRACE_ID, None)),
        ("nonsense", (None, None)),
        ("abc/1;o=1", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_trace_header(header, expected):
    """X-Cloud-Trace-Context gives the trace id and the span as Cloud Logging's 16 hex digits."""
    assert logs.parse_trace_header(header) == expected


def test_log_context_adds_trace_span_and_session(stream):
    """Inside log_context every line carries the trace (with project), span and conversation id."""
    log = logging.getLogger("livetalk.relay")
    trace, span = logs.parse_trace_header(f"{TRACE_ID}/7;o=1")
    with logs.log_context(trace=trace, span_id=span):
        with logs.log_context(session_id="conv-1"):
            log.info("inside")
        log.info("outer")
    log.info("after")
    inside, outer, after = stream()
    assert inside[logs.TRACE_KEY] == f"projects/demo-project/traces/{TRACE_ID}"
    assert inside[logs.SPAN_KEY] == "0000000000000007"
    assert inside["session_id"] == "conv-1"
    assert outer[logs.TRACE_KEY] == inside[logs.TRACE_KEY] and "session_id" not in outer
    assert logs.TRACE_KEY not in after and "session_id" not in after


def test_trace_without_a_project_is_written_bare(restore_logging):
    """Without a project id the trace id is kept under a plain key rather than a broken name."""
    buffer = io.StringIO()
    logs.configure_logging("INFO", stream=buffer, project="")
    with logs.log_context(trace=TRACE_ID):
        logging.getLogger("x").info("m")
    entry = json.loads(buffer.getvalue())
    assert entry["trace"] == TRACE_ID and logs.TRACE_KEY not in entry


def test_log_context_is_per_thread_and_follows_asyncio_tasks(stream):
    """Conversation ids never leak between threads, and a task started inside a context keeps it."""
    log = logging.getLogger("livetalk.relay")

    async def conversation(session_id: str) -> None:
        with logs.log_context(session_id=session_id):
            await asyncio.sleep(0)
            log.info("turn")

    def run(session_id: str) -> None:
        asyncio.run(conversation(session_id))

    threads = [threading.Thread(target=run, args=(f"conv-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.info("main")
    entries = stream()
    assert sorted(e.get("session_id") for e in entries if e["message"] == "turn") == [
        "conv-0", "conv-1", "conv-2", "conv-3"]
    assert "session_id" not in entries[-1]


def test_extra_fields_are_merged_but_cannot_replace_core_keys(stream):
    """``extra={"fields": ...}`` adds keys to the line; severity and message stay the record's own."""
    logging.getLogger("livetalk.relay").info(
        "conversation summary",
        extra={"fields": {"duration_s": 12.5, "turns": 3, "severity": "DEBUG", "message": "x",
                          "when": dt.date(2026, 1, 2)}},
    )
    (entry,) = stream()
    assert entry["duration_s"] == 12.5 and entry["turns"] == 3
    assert entry["severity"] == "INFO" and entry["message"] == "conversation summary"
    assert entry["when"] == "2026-01-02"


def test_exceptions_go_to_stack_trace(stream):
    """A logged exception's traceback is in ``stack_trace``, apart from the message."""
    try:
        raise RuntimeError("upstream broke")
    except RuntimeError:
        logging.getLogger("livetalk.live").exception("upstream failed")
    (entry,) = stream()
    assert entry["severity"] == "ERROR"
    assert entry["message"] == "upstream failed"
    assert "Traceback" in entry["stack_trace"] and "RuntimeError: upstream broke" in entry["stack_trace"]


def test_the_api_key_never_reaches_a_log_line(stream, monkeypatch):
    """The key is scrubbed from messages, arguments, fields (nested), exception text and stack info."""
    log = logging.getLogger("livetalk.web")
    log.info("connecting with key=%s", FAKE_KEY)
    log.info(f"formatted in the message {FAKE_KEY}")
    log.info("mapping args %(k)s", {"k": FAKE_KEY})
    log.info("fields", extra={"fields": {"url": f"wss://x/?key={FAKE_KEY}",
                                         "nested": {"deep": [FAKE_KEY, 1]}, FAKE_KEY: "as a key"}})
    try:
        raise ValueError(f"bad request for key {FAKE_KEY}")
    except ValueError as exc:
        try:
            raise RuntimeError("wrapped") from exc
        except RuntimeError:
            log.exception("failed: %r", exc)
    log.warning("with stack", stack_info=True)
    raw = stream.raw()
    assert FAKE_KEY not in raw
    assert raw.count(REDACTED) >= 7
    assert len(stream()) == 6


def test_secrets_from_the_environment_are_scrubbed_too(restore_logging, monkeypatch):
    """The values of GEMINI_API_KEY and TICKET_SECRET are scrubbed even when not passed explicitly."""
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("TICKET_SECRET", "ticket-secret-value-xyz")
    buffer = io.StringIO()
    logs.configure_logging("INFO", stream=buffer)
    logging.getLogger("x").info("%s %s", FAKE_KEY, "ticket-secret-value-xyz")
    assert json.loads(buffer.getvalue())["message"] == f"{REDACTED} {REDACTED}"


def test_configure_logging_replaces_its_own_handler_only(restore_logging):
    """Calling it twice leaves one handler of ours (JSON or text); other handlers (pytest's) stay."""
    root = logging.getLogger()
    others = [h for h in root.handlers if not isinstance(h.formatter, (logs.JsonFormatter, logs.TextFormatter))]
    first = logs.configure_logging("INFO", stream=io.StringIO())
    second = logs.configure_logging("WARNING", stream=io.StringIO())
    assert first not in root.handlers and second in root.handlers
    assert [h for h in root.handlers if h is not second] == others
    assert root.level == logging.WARNING


def test_trace_middleware_sets_context_for_the_request(stream):
    """The WSGI middleware puts the request's trace on every line logged while it runs."""
    def app(environ, start_response):
        logging.getLogger("livetalk.web").info("handling")
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = logs.TraceContextMiddleware(app)
    body = wrapped({"HTTP_X_CLOUD_TRACE_CONTEXT": f"{TRACE_ID}/3;o=1"}, lambda *a: None)
    logging.getLogger("livetalk.web").info("between requests")
    assert body == [b"ok"]
    during, between = stream()
    assert during[logs.TRACE_KEY].endswith(TRACE_ID) and during[logs.SPAN_KEY] == "0000000000000003"
    assert logs.TRACE_KEY not in between


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("scenario=cafe&token=abc.def&mode=text", "scenario=cafe&token=[REDACTED]&mode=text"),
        ("resume=xyz", "resume=[REDACTED]"),
        ("KEY=abc", "KEY=[REDACTED]"),
        ("mode=voice", "mode=voice"),
    ],
)
def test_redact_query(query, expected):
    """Access tickets and resume handles in a URL never reach a log."""
    assert logs.redact_query(query) == expected


# --- gunicorn ------------------------------------------------------------------------------


def _gunicorn_logger(monkeypatch, fmt: str = "json", level: str = "INFO"):
    """gunicorn's own Logger configured with our logconfig_dict, as gunicorn.conf.py will."""
    from gunicorn import glogging
    from gunicorn.config import Config

    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    cfg = Config()
    cfg.set("logconfig_dict", logs.gunicorn_logconfig_dict(level, fmt))
    cfg.set("accesslog", "-")
    return glogging.Logger(cfg)


def test_gunicorn_error_log_is_json_and_scrubbed(restore_logging, monkeypatch, capsys):
    """gunicorn's error log, configured through gunicorn_logconfig_dict, writes scrubbed JSON lines."""
    logger = _gunicorn_logger(monkeypatch)
    logger.error("worker failed with key %s", FAKE_KEY)
    out = capsys.readouterr().out
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["severity"] == "ERROR" and entry["logger"] == "gunicorn.error"
    assert entry["message"] == f"worker failed with key {REDACTED}"


def test_gunicorn_access_log_has_http_request(restore_logging, monkeypatch, capsys):
    """An access line carries Cloud Logging's httpRequest, the trace, and no ticket from the URL."""
    logger = _gunicorn_logger(monkeypatch)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/ws/realtime?token=secret-ticket&scenario=cafe",
               "PATH_INFO": "/ws/realtime", "QUERY_STRING": "token=secret-ticket&scenario=cafe",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "169.254.1.1",
               "HTTP_USER_AGENT": "pytest"}
    request = SimpleNamespace(headers=[("USER-AGENT", "pytest"),
                                       ("X-CLOUD-TRACE-CONTEXT", f"{TRACE_ID}/9;o=1")])
    response = SimpleNamespace(status="101 Switching Protocols", sent=0, headers=[])
    logger.access(response, request, environ, dt.timedelta(seconds=65, microseconds=250000))
    out = capsys.readouterr().out
    assert "secret-ticket" not in out
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["logger"] == "gunicorn.access" and entry["severity"] == "INFO"
    assert entry["message"] == "GET /ws/realtime 101"
    assert entry["httpRequest"] == {
        "requestMethod": "GET", "requestUrl": "/ws/realtime?token=[REDACTED]&scenario=cafe",
        "protocol": "HTTP/1.1", "userAgent": "pytest", "remoteIp": "169.254.1.1",
        "latency": "65.250000s", "status": 101, "responseSize": "0"}
    assert entry[logs.TRACE_KEY] == f"projects/demo-project/traces/{TRACE_ID}"
    assert entry[logs.SPAN_KEY] == "0000000000000009"


def _access(logger, path: str, query: str = "") -> None:
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path + (f"?{query}" if query else ""), "PATH_INFO": path,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    request = SimpleNamespace(headers=[])
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    logger.access(response, request, environ, dt.timedelta(milliseconds=12))


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_static_files_are_logged_at_debug_only(restore_logging, monkeypatch, capsys, fmt):
    """At INFO the page's scripts and styles leave no access line; the routes that matter do."""
    logger = _gunicorn_logger(monkeypatch, fmt)
    for path in ("/static/main.js", "/static/style.css", "/favicon.svg", "/healthz", "/"):
        _access(logger, path)
    out = capsys.readouterr().out
    assert "/static/" not in out and "favicon" not in out
    assert "/healthz" in out and len(out.splitlines()) == 2


def test_static_files_are_logged_at_debug(restore_logging, monkeypatch, capsys):
    """With LOG_LEVEL=DEBUG every request is logged, static files included."""
    logger = _gunicorn_logger(monkeypatch, "text", level="DEBUG")
    _access(logger, "/static/main.js")
    assert "/static/main.js" in capsys.readouterr().out


def test_text_lines_are_readable_and_scrubbed(restore_logging):
    """The terminal format is one line: time, level, logger, message, then fields and the conversation id."""
    buffer = io.StringIO()
    logs.configure_logging("INFO", fmt="text", stream=buffer, secrets=(FAKE_KEY,))
    with logs.log_context(session_id="s-42"):
        logging.getLogger("livetalk.relay").info("conversation ended", extra={"fields": {
            "end_reason": "end", "turns": 3, "recording": None, "note": "two words", "key": FAKE_KEY}})
    line = buffer.getvalue().strip()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    livetalk\.relay: conversation ended "
                        r'end_reason=end turns=3 note="two words" key=\[REDACTED\] session_id=s-42', line), line


def test_text_access_lines_redact_tickets(restore_logging, monkeypatch, capsys):
    """A text access line is method, URL (tickets redacted), status and time in ms."""
    _access(_gunicorn_logger(monkeypatch, "text"), "/ws/realtime", "token=secret-ticket&scenario=sales-ja")
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    GET /ws/realtime\?token=\[REDACTED\]&scenario=sales-ja "
                        r"200 12 ms", line), line
