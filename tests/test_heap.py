"""Both long-running processes freeze their startup heap (app/heap.py): the web process once
its application is built (the uvicorn factory), each worker process once it has booted. Run
as the real entry points do, in processes of their own (a freeze is for the whole process)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from tests.processes import run_python

STARTUP_OBJECTS = 50_000  # the imports alone hold far more than this

WEB = """
import gc
from app.main import asgi_app
before = gc.get_freeze_count()
asgi_app()
print(before, gc.get_freeze_count())
"""

WORKER = """
import gc
import workers
before = gc.get_freeze_count()
workers.broker.emit_after("process_boot")  # what `dramatiq workers` does in each process
print(before, gc.get_freeze_count())
"""


def _run(code: str, tmp_path: Path) -> tuple[int, int]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'heap.db'}",
        "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    result = run_python(["-c", code], env, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split()[-2:])
    return before, after


def test_the_web_process_freezes_its_heap_once_the_app_is_built(tmp_path: Path) -> None:
    before, after = _run(WEB, tmp_path)

    assert before == 0
    assert after > STARTUP_OBJECTS


def test_a_worker_process_freezes_its_heap_once_booted(tmp_path: Path) -> None:
    before, after = _run(WORKER, tmp_path)

    assert before == 0
    assert after > STARTUP_OBJECTS
