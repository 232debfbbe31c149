"""The service as it runs in production, for integration tests and benchmarks: a uvicorn web
process and ``dramatiq`` worker processes (as in the Procfile) on one SQLite file and a real
Redis, talking to the fake Chatwoot over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.management.accounts import create_account
from app.store import init_store, migrate
from app.store.db import database
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, sign

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    settings: Settings
    database_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    web: subprocess.Popen[bytes] | None = None
    workers: subprocess.Popen[bytes] | None = None
    http: httpx.Client | None = None
    account_token_value: str = ""

    def __post_init__(self) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "PORT": str(self.port),
            "PYTHONPATH": str(REPO),
            "LOG_LEVEL": "WARNING",
        }
        migrate(init_store(self.settings))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_web(self) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:asgi_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        self.web = self._spawn(command, "web.log")
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("web process did not start: " + self.log("web.log"))

    def start_workers(self, processes: int = 2, threads: int = 8) -> None:
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "workers",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        self.workers = self._spawn(command, "workers.log")

    def kill_workers(self) -> None:
        """SIGKILL the whole worker process group: no cleanup, no acks."""
        assert self.workers is not None
        os.killpg(self.workers.pid, signal.SIGKILL)
        self.workers.wait(timeout=10)
        self.workers = None

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 (owned by the process)
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in (self.workers, self.web):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self.http is not None:
            self.http.close()
        database.close()

    # --- the management API, as a client would use it -------------------------------------

    def account_token(self) -> str:
        with database.connection_context():
            _, token = create_account("Load")
        return token

    def cloud_instance(self, chatwoot: FakeChatwoot, name: str = "carga") -> dict[str, Any]:
        account_id = chatwoot.add_account("Load")
        cw_token = chatwoot.add_user("Admin", {account_id: "administrator"})
        assert self.http is not None
        response = self.http.post(
            "/api/instance/new",
            headers={"token": self.account_token()},
            json={
                "name": name,
                "provider": "cloud",
                "cloudPhoneNumberId": PHONE_NUMBER_ID,
                "cloudAccessToken": "EAAG-load",
                "cloudAppSecret": APP_SECRET,
                "chatwootEnabled": True,
                "chatwootBaseUrl": chatwoot.base_url,
                "chatwootAccountId": account_id,
                "chatwootApiToken": cw_token,
            },
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        assert created["chatwoot"]["status"] == "active", created
        return created

    def post_signed(self, instance: str, body: bytes) -> httpx.Response:
        assert self.http is not None
        return self.http.post(
            f"/webhooks/whatsapp/cloud/{instance}",
            content=body,
            headers={"content-type": "application/json", "x-hub-signature-256": sign(body)},
        )
