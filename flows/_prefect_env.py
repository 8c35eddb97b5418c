"""Environment for quiet, offline Prefect runs, and the embedded Prefect server's lifetime.

Prefect's own embedded mode (no ``PREFECT_API_URL``) starts a temporary server the first time a
client needs one, in every process that needs one: the campaign, and each Dask worker again
(seconds each; figures on the docs' performance page). It shares the campaign's process group,
so a terminal's Ctrl-C stops it before the flow, whose client then retries for a minute or two;
a SIGKILLed campaign leaves it running; and it gives up after 20 s of start-up on a loaded
machine.

:func:`prefect_api` starts that server itself instead, once per campaign, and points
``PREFECT_API_URL`` at it, so the flow and every Dask worker (which inherit the environment)
report to the same server. The server runs in its own session (a Ctrl-C reaches the campaign
only; the campaign stops the server when it is done), dies with the process that started it
(``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread that polls its parent everywhere), and is
given ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (default 120 s here) to start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

__all__ = ["configure_prefect", "drain_to_api", "prefect_api"]

STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# seconds; Prefect's 20 s default was too short for two campaigns starting on a busy 2-core box
STARTUP_TIMEOUT = 120

# Runs in the server's process before uvicorn: die with the parent (argv[1] is its PID).
_BOOTSTRAP = """\
import os, sys, threading, time
parent = int(sys.argv.pop(1))
try:
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
if os.getppid() != parent:
    os._exit(1)
threading.Thread(target=watch, daemon=True).start()
sys.argv[0] = "uvicorn"
import runpy
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


def configure_prefect(home: str | Path, *, quiet: bool = False) -> None:
    """Analytics off, and ``PREFECT_HOME`` inside ``home`` unless a server is configured.

    With ``PREFECT_API_URL`` set (``prefect server start`` or Prefect Cloud), flows report there
    unchanged; otherwise :func:`prefect_api` runs a temporary local server whose database lives
    in ``home``. Values the user already set in the environment are kept. Call it before
    prefect is imported: Prefect reads its settings from the environment once.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault(STARTUP_TIMEOUT_ENV, str(STARTUP_TIMEOUT))
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(Path(home).resolve()))
    # one line per batch from the flow is enough; a line per task drowns it
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    # Dask's INFO lines (every worker start and stop) drown the flow's too
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error" if quiet else "warning")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@contextlib.contextmanager
def prefect_api(home: str | Path) -> Iterator[str]:
    """The Prefect API URL a campaign reports to, for the duration of the block.

    ``PREFECT_API_URL`` when set. Otherwise a temporary server on 127.0.0.1 with its database
    in ``home``, exported as ``PREFECT_API_URL`` (so processes started inside the block, such
    as Dask workers, use it too) and stopped at the end of the block. The server is Prefect's
    own ASGI app, started as Prefect's embedded mode starts it, but tied to this process (see
    the module docstring).

    Raises
    ------
    RuntimeError
        When the server does not answer within the start-up timeout or exits while starting.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    timeout = float(os.environ.get(STARTUP_TIMEOUT_ENV) or STARTUP_TIMEOUT)
    server, url = _start_server(home, timeout=timeout)
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        _stop(server)


def _start_server(home: Path, *, timeout: float) -> tuple[subprocess.Popen, str]:
    spec = importlib.util.find_spec("prefect")
    app_dir = str(Path(spec.origin).parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_UI_ENABLED="0",
        PREFECT__SERVER_EPHEMERAL="1",
        PREFECT__SERVER_FINAL="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    log = home / "server.log"
    deadline = time.monotonic() + timeout
    for _attempt in range(3):  # a port taken between choosing and binding: try another
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        with open(log, "ab") as err:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOTSTRAP,
                    str(os.getpid()),
                    "--app-dir",
                    app_dir,
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # a terminal's Ctrl-C is the campaign's to handle
            )
        try:
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    break
                if _healthy(url):
                    return server, url
                time.sleep(0.2)
            else:
                raise RuntimeError(
                    f"the embedded Prefect server did not start within {timeout:.0f} s "
                    f"(raise {STARTUP_TIMEOUT_ENV}; its log: {log})"
                )
        except BaseException:
            _stop(server)
            raise
    raise RuntimeError(
        f"the embedded Prefect server exited while starting (code {server.returncode}); "
        f"its log: {log}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local: no proxy
    try:
        with opener.open(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def drain_to_api() -> None:
    """Send the logs and events still queued for the API while its server is up (otherwise
    Prefect's exit handler tries a stopped server and prints an error)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5, at_exit=False)
    EventsWorker.drain_all(timeout=5, at_exit=False)
