"""
The embedded worker: Dramatiq worker threads and the cron scheduler inside the
web server process, for the no-services default (StubBroker, no REDIS_URL).

Only the server commands (`serve`, `runserver`) call `start()`; migrations,
the test runner and other management commands never process messages.
Messages live in this process's memory: the database, not the queue, is the
source of truth for runs, so a restart loses no committed state.
"""

from __future__ import annotations

import atexit
import logging
import threading

import dramatiq
from django.conf import settings
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_worker: dramatiq.Worker | None = None
_scheduler_thread: threading.Thread | None = None


def start() -> bool:
    """Start the worker threads and the scheduler once; False when a real broker is configured."""
    global _worker, _scheduler_thread
    if not settings.EMBEDDED_WORKER:
        return False
    with _lock:
        if _worker is not None:
            return True
        autodiscover_modules("tasks")
        broker = dramatiq.get_broker()
        # What the dramatiq CLI does at boot: starts the time-limit monitor.
        broker.emit_after("process_boot")
        _worker = dramatiq.Worker(broker, worker_threads=settings.EMBEDDED_WORKER_THREADS, worker_timeout=250)
        _worker.start()
        if _scheduler_thread is None or not _scheduler_thread.is_alive():
            _scheduler_thread = threading.Thread(target=_run_scheduler, name="embedded-scheduler", daemon=True)
            _scheduler_thread.start()
        atexit.register(stop)
    logger.info("embedded worker started with %d threads", settings.EMBEDDED_WORKER_THREADS)
    return True


def _run_scheduler() -> None:
    from dramatiq_crontab import scheduler

    scheduler.start()


def stop() -> None:
    """Stop the worker threads. The scheduler thread (a daemon) lives on until the process ends:
    APScheduler's shutdown drops its jobs, which dramatiq-crontab registers once, at import."""
    global _worker
    with _lock:
        if _worker is None:
            return
        _worker.stop(timeout=5000)
        _worker = None


def is_running() -> bool:
    worker = _worker
    if worker is None:
        return False
    consumers_alive = any(thread.is_alive() for thread in worker.consumers.values())
    workers_alive = any(thread.is_alive() for thread in worker.workers)
    scheduler_alive = _scheduler_thread is not None and _scheduler_thread.is_alive()
    return consumers_alive and workers_alive and scheduler_alive
