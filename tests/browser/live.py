"""The service as it runs in production, for the browser test: a uvicorn web process and a
``dramatiq`` worker process on one SQLite file and the real Redis, plus the HTTP calls a
client makes to set it up (instances, signed WhatsApp webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
APP_SECRET = "browser-app-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def cloud_text_body(phone_number_id: str, wa_id: str, message_id: str, text: str) -> bytes:
    """A WhatsApp Cloud API webhook body carrying one text message."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": message_id,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


@dataclass
class LiveService:
    database_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn(
            "web.log",
            "uvicorn", "--factory", "app.main:asgi_app", "--host", "127.0.0.1",
            "--port", str(self.port), "--no-access-log",
        )  # fmt: skip
        self._spawn("workers.log", "dramatiq", "workers", "--processes", "1", "--threads", "4")
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("web process did not start: " + self.log("web.log"))

    def _spawn(self, log_name: str, module: str, *args: str) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "WARNING",
        }
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 (owned by the process)
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def log(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.http is not None:
            self.http.close()

    # ---- the management API and the WhatsApp side, as real clients use them ----

    def client(self) -> httpx.Client:
        assert self.http is not None, "start() first"
        return self.http

    def new_cloud_instance(
        self, token: str, name: str, phone_number_id: str, chatwoot: dict[str, Any]
    ) -> dict[str, Any]:
        response = self.client().post(
            "/api/instance/new",
            headers={"token": token},
            json={
                "name": name,
                "provider": "cloud",
                "cloudPhoneNumberId": phone_number_id,
                "cloudAccessToken": "EAAG-browser",
                "cloudAppSecret": APP_SECRET,
                "chatwootEnabled": True,
                **chatwoot,
            },
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def post_whatsapp(self, instance: str, body: bytes) -> None:
        signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = self.client().post(
            f"/webhooks/whatsapp/cloud/{instance}",
            content=body,
            headers={"content-type": "application/json", "x-hub-signature-256": signature},
        )
        assert response.status_code == 200, response.text

    def relay(self, token: str, instance: str) -> dict[str, Any]:
        response = self.client().get(f"/api/chatwoot/list/{instance}", headers={"token": token})
        assert response.status_code == 200, response.text
        relay: dict[str, Any] = response.json()["relay"]
        return relay
