"""Searchable logs (app/logs.py): JSON lines, context fields, request ids, masking."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.config import ConfigError, Settings
from app.logs import adopt_handlers, build_handler, current_context, log_context
from tests.processes import run_python

SECRET = "s3cr3t-value-0123456789"


class Captured:
    """A real handler as ``configure_logging`` builds it, writing to a buffer."""

    def __init__(self, log_format: str) -> None:
        self.stream = io.StringIO()
        self.handler = build_handler(log_format, self.stream)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        parsed: list[dict[str, Any]] = [json.loads(line) for line in self.lines()]
        return parsed


def _attach(log_format: str) -> Iterator[Captured]:
    captured = Captured(log_format)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.INFO)
    yield captured
    root.removeHandler(captured.handler)
    root.setLevel(previous)


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    yield from _attach("json")


@pytest.fixture
def text_logs() -> Iterator[Captured]:
    yield from _attach("text")


def test_json_lines_carry_level_logger_message_and_context(json_logs: Captured) -> None:
    log = logging.getLogger("wootbridge.test")
    log.info("outside")
    with log_context(event_id=42, integration_id="int_abc"):
        with log_context(request_id="req-1", ignored=None):
            log.warning("inside %s", "both")
        log.info("event only")
    assert current_context() == {}

    outside, inside, event_only = json_logs.records()
    assert outside["message"] == "outside" and outside["level"] == "INFO"
    assert outside["logger"] == "wootbridge.test" and outside["time"].endswith("Z")
    assert not {"request_id", "event_id", "integration_id"} & set(outside)
    assert inside["message"] == "inside both" and inside["level"] == "WARNING"
    assert (inside["request_id"], inside["event_id"], inside["integration_id"]) == (
        "req-1",
        "42",
        "int_abc",
    )
    assert "ignored" not in inside
    assert event_only["event_id"] == "42" and "request_id" not in event_only


def test_a_traceback_stays_on_one_line_and_is_masked(json_logs: Captured) -> None:
    try:
        raise RuntimeError(f"remote said token={SECRET}\nsecond line")
    except RuntimeError:
        logging.getLogger("wootbridge.test").exception("call failed: password=%s", SECRET)

    lines = json_logs.lines()
    assert len(lines) == 1
    (record,) = json_logs.records()
    assert record["level"] == "ERROR"
    assert record["message"] == "call failed: password=***"
    assert "RuntimeError: remote said token=***" in record["exception"]
    assert SECRET not in lines[0]


def test_secrets_are_masked_in_every_field(json_logs: Captured, text_logs: Captured) -> None:
    with log_context(integration_id=f"token={SECRET}"):
        logging.getLogger("wootbridge.test").info(
            "POST /webhooks/chatwoot/int_1/%s Authorization: Bearer %s", SECRET, SECRET
        )
    (record,) = json_logs.records()
    assert record["message"] == "POST /webhooks/chatwoot/int_1/*** Authorization: *** ***"
    assert record["integration_id"] == "token=***"
    assert SECRET not in json_logs.stream.getvalue()
    assert SECRET not in text_logs.stream.getvalue()


def test_text_lines_show_the_context(text_logs: Captured) -> None:
    with log_context(request_id="req-7"):
        logging.getLogger("wootbridge.test").info("hello")
    (line,) = text_logs.lines()
    assert line.endswith("wootbridge.test: hello [request_id=req-7]")


def _access_records(captured: Captured) -> list[dict[str, Any]]:
    return [r for r in captured.records() if r["logger"] == "wootbridge.access"]


def test_the_request_id_round_trips(json_logs: Captured, client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "heroku-5f1c:abc.9"})

    assert response.headers["X-Request-Id"] == "heroku-5f1c:abc.9"
    (access,) = _access_records(json_logs)
    assert access["request_id"] == "heroku-5f1c:abc.9"
    assert access["message"].startswith("GET /healthz 200")


def test_a_request_id_is_generated_or_sanitised(json_logs: Captured, client: TestClient) -> None:
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32 and generated.isalnum()
    hostile = 'evil id\r\n{"level": "x"}<script>' + "a" * 200
    cleaned = client.get("/nowhere", headers={"X-Request-Id": hostile}).headers["X-Request-Id"]
    assert cleaned == ("evilidlevel:xscript" + "a" * 200)[:64]

    first, second = _access_records(json_logs)
    assert first["request_id"] == generated
    assert second["request_id"] == cleaned
    assert second["message"].startswith("GET (no route) 404")


def test_app_lines_inside_a_request_carry_its_id(
    json_logs: Captured, client: TestClient, account_token: str
) -> None:
    """Also from the thread the request's database work runs in (``in_db``)."""
    body = {"name": "suporte", "provider": "gateway", "gatewayBaseUrl": "https://gw.example.com"}
    body["gatewayToken"] = SECRET
    headers = {"token": account_token, "X-Request-Id": "req-new"}
    assert client.post("/api/instance/new", json=body, headers=headers).status_code == 201

    app_records = [r for r in json_logs.records() if r["logger"] != "httpx"]
    created = [r for r in app_records if r["message"].startswith("instance suporte created")]
    assert len(created) == 1 and created[0]["logger"] == "app.management.instances"
    assert {r["request_id"] for r in app_records} == {"req-new"}
    assert SECRET not in json_logs.stream.getvalue()


def test_log_format_is_validated() -> None:
    assert Settings.from_environ({"LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_environ({}).log_format == "text"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be text or json"):
        Settings.from_environ({"LOG_FORMAT": "xml"})


def test_log_format_json_from_the_environment(tmp_path: Path) -> None:
    """The real entry point: ``wootbridge migrate`` with LOG_FORMAT=json writes JSON lines."""
    env = {"LOG_FORMAT": "json", "DATABASE_URL": f"sqlite:///{tmp_path / 'logs.db'}"}
    result = run_python(["-m", "app.cli", "migrate"], env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(r["message"].startswith("database ready at sqlite:///") for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_worker_handlers_set_up_by_dramatiq_are_adopted() -> None:
    """Dramatiq's worker processes log through a handler of their own (a pipe to the parent):
    ``adopt_handlers`` gives it our format and filters instead of replacing it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # what dramatiq's setup_worker_logging installs
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    httpx_logger = logging.getLogger("httpx")
    httpx_level = httpx_logger.level
    httpx_logger.setLevel(logging.NOTSET)
    try:
        adopt_handlers("json")
        adopt_handlers("json")  # idempotent: one filter of each kind
        with log_context(event_id=812, integration_id="int_abc"):
            logging.getLogger("workers.relay").info("token=%s refused", SECRET)
        # a line per remote call, as in the web process: quiet below WARNING
        httpx_logger.info('HTTP Request: POST https://graph.example.com "HTTP/1.1 200 OK"')
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        httpx_logger.setLevel(httpx_level)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["logger"] == "workers.relay"
    assert (record["event_id"], record["integration_id"]) == ("812", "int_abc")
    assert SECRET not in line
    assert len(handler.filters) == 2
