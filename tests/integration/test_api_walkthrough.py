"""docs/api.md's walkthrough, pasted into bash against a real server: the documented commands work."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess

import pytest
from django.conf import settings

from apps.executions.models import Execution
from tests.factories import UserFactory
from tests.support.services import BASE_DIR, serve_process, worker_process

pytestmark = pytest.mark.django_db(transaction=True)

DOC = BASE_DIR / "docs" / "api.md"


def walkthrough_blocks() -> list[str]:
    text = DOC.read_text().split("## Walkthrough", 1)[1]
    return re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)


def test_the_documented_walkthrough_creates_publishes_runs_and_streams_a_workflow():
    UserFactory(username="operator")  # what `make run` creates
    blocks = walkthrough_blocks()
    assert len(blocks) == 5
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(serve_process())
        if not settings.EMBEDDED_WORKER:  # on a real broker (CI), runs wait for a worker process
            stack.enter_context(worker_process())
        result = subprocess.run(
            [shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", "\n".join(blocks)],
            cwd=BASE_DIR,
            env={**server.env, "BASE": server.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr + result.stdout
    run = Execution.objects.get()
    assert (run.status, run.outputs) == ("succeeded", {"shout": "HELLO!"})
    assert f"run {run.pk}" in result.stdout
    assert "event: execution.status" in result.stdout
    broken = json.loads(result.stdout.strip().splitlines()[-1])
    assert broken["error"]["code"] == "invalid"
    assert any(field.startswith("graph.nodes.t") for field in broken["error"]["fields"])
