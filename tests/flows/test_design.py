"""The design campaign as a real Prefect flow, in real processes.

Each `mdesign optimize` process starts Prefect's embedded server (~6-14 s), so these tests are
few and each checks a lot: Ctrl-C of the process group stops a campaign promptly and it resumes,
a second campaign on a busy folder is refused, a SIGKILLed campaign on a 2-worker Dask cluster
leaves no process behind and resumes without loss or duplicates, and a `prefect server start` on
127.0.0.1 receives the flow.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import assert_input_error

ROOT = Path(__file__).resolve().parents[2]


def _config(path: Path, **over) -> Path:
    cfg = {
        "name": "flowtest",
        "generator": {"factory": "tests.optimization.fakes:make_space", "factory_params": {}},
        "objectives": [{"evaluator": "volume_fraction", "goal": "maximize"}],
        "bo": {
            "budget": 8,
            "initial": 4,
            "batch_size": 2,
            "num_restarts": 2,
            "raw_samples": 32,
            "mc_samples": 32,
        },
        "baselines": ["random"],
        "baseline_batch_size": 4,
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        **extra,
    )
    return env


def _optimize(cfg: Path, out: Path, env: dict, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mdesign",
            "optimize",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "-q",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def _rows(out: Path) -> list[dict]:
    path = out / "evaluations.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


def _descendants(pid: int) -> dict[int, tuple[str, str]]:
    """Every live process below ``pid``: ``{pid: (start time, command line)}`` from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            stat = _stat(child)
            if stat:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                found[child] = (stat[19], cmd.decode(errors="replace"))
                todo.append(child)
    return found


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), or None for a gone or zombie process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in "ZX" else fields


def _alive(procs: dict[int, tuple[str, str]]) -> dict[int, str]:
    return {p: cmd for p, (start, cmd) in procs.items() if (_stat(p) or [None] * 20)[19] == start}


def _wait_rows(proc: subprocess.Popen, out: Path, n: int) -> None:
    deadline = time.time() + 300
    while len(_rows(out)) < n and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    assert len(_rows(out)) >= n


def _assert_resumed(rows: list[dict], before: list[dict], budget: int, methods) -> None:
    # every completed evaluation kept as it was (the CSV lists them as they completed, out of id
    # order on two workers, and sorted by id once rewritten at the end)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id.get(r["id"]) == r for r in before), (before, rows)
    n = budget * len(methods)
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    assert len({r["latent"] for r in rows}) == n  # nothing evaluated twice
    for m in methods:
        assert sum(r["method"] == m for r in rows) == budget


def test_bad_campaign_inputs_exit_2_before_any_flow(tmp_path, run_cli):
    cfg = _config(tmp_path / "c.yaml")
    out = tmp_path / "out"
    assert_input_error(
        run_cli("optimize", "--config", tmp_path / "nope.yaml"), "no such config file"
    )
    bad = _config(tmp_path / "b1.yaml", objectives=[{"evaluator": "volume_fraction", "goal": "up"}])
    assert_input_error(run_cli("optimize", "--config", bad, "--out", out), "objectives.0.goal")
    bad = _config(tmp_path / "b2.yaml", bo={"budgte": 3})
    assert_input_error(run_cli("optimize", "--config", bad, "--out", out), "bo.budgte")
    bad = _config(tmp_path / "b3.yaml", generator={"factory": None, "checkpoint": "missing.pt"})
    assert_input_error(run_cli("optimize", "--config", bad, "--out", out), "generator.checkpoint")
    bad = _config(
        tmp_path / "b4.yaml", generator={"factory": "tests.optimization.fakes:not_a_space"}
    )
    assert_input_error(
        run_cli("optimize", "--config", bad, "--out", out), "generator.factory", "design space"
    )
    bad = _config(tmp_path / "b5.yaml", seed=-1)
    assert_input_error(run_cli("optimize", "--config", bad, "--out", out), "seed")
    for seed in ("-1", str(2**32), "x"):
        assert_input_error(
            run_cli("optimize", "--config", cfg, "--out", out, "--seed", seed), "--seed"
        )
    assert_input_error(run_cli("optimize", "--config", cfg, "--budget", "1"), "--budget")
    for address in ("not-a-url", "tcp://127.0.0.1:1"):
        assert_input_error(
            run_cli("optimize", "--config", cfg, "--out", out, "--scheduler", address),
            "--scheduler",
        )
    (tmp_path / "file").write_text("x")
    assert_input_error(run_cli("optimize", "--config", cfg, "--out", tmp_path / "file"), "--out")
    assert not out.exists()
    # a damaged store (here 0 bytes) is refused as it is, with how to recover; nothing written
    out.mkdir()
    (out / "evaluations.sqlite").write_bytes(b"")
    assert_input_error(
        run_cli("optimize", "--config", cfg, "--out", out), "evaluations.sqlite", "empty"
    )
    assert [(p.name, p.stat().st_size) for p in out.iterdir()] == [("evaluations.sqlite", 0)]


def test_ctrl_c_stops_promptly_and_resumes_and_a_busy_folder_is_refused(tmp_path):
    cfg = _config(tmp_path / "c.yaml", generator={"factory_params": {"delay": 0.4}})
    out = tmp_path / "out"
    env = _env(tmp_path)
    proc = _optimize(cfg, out, env)
    _wait_rows(proc, out, 3)
    second = _optimize(cfg, out, env)
    _, err = second.communicate(timeout=120)
    assert proc.poll() is None  # refused while the first runs, not after it
    assert second.returncode == 2 and err.startswith("error: --out") and "in use" in err, err
    assert len(err.splitlines()) == 1
    below = _descendants(proc.pid)
    assert any("create_app" in cmd for _, cmd in below.values())  # its Prefect server
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    deadline = time.time() + 10
    while _alive(below) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(below), _alive(below)
    before = _rows(out)
    rerun = _optimize(cfg, out, env)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "report:" in stdout
    _assert_resumed(_rows(out), before, 8, ("bo", "random"))
    assert (out / "report.md").exists() and (out / "best.npz").exists()


def test_sigkill_on_dask_workers_leaves_no_process_and_resumes(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cfg = _config(
        tmp_path / "c.yaml",
        generator={"factory_params": {"pid_dir": str(pids), "delay": 0.4}},
        bo={"budget": 6, "initial": 4},
    )
    out = tmp_path / "out"
    env = _env(tmp_path)
    proc = _optimize(cfg, out, env, "--workers", "2")
    _wait_rows(proc, out, 3)
    below = _descendants(proc.pid)
    servers = [p for p, (_, cmd) in below.items() if "create_app" in cmd]
    assert len(servers) == 1, below  # one Prefect server: the workers report to the campaign's
    assert sum("spawn_main" in cmd for _, cmd in below.values()) == 2, below  # Dask workers
    os.kill(proc.pid, signal.SIGKILL)  # the campaign's process only: nothing can clean up
    proc.wait()
    deadline = time.time() + 10
    while _alive(below) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(below), _alive(below)  # no orphan: server and workers died with it
    before = _rows(out)
    assert 3 <= len(before) < 12
    # resumed with a confirm stage (not part of the campaign's identity): it runs through the
    # flow's tasks on the same cluster, after the evaluations
    confirming = _config(
        tmp_path / "confirm.yaml",
        generator={"factory_params": {"pid_dir": str(pids), "delay": 0.4}},
        bo={"budget": 6, "initial": 4},
        top_k=2,
        confirm={"evaluator": "tests.optimization.fakes:capped_fraction", "params": {"cap": 0.45}},
    )
    rerun = _optimize(confirming, out, env, "--workers", "2")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "report:" in stdout
    _assert_resumed(_rows(out), before, 6, ("bo", "random"))
    with np.load(out / "best.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert set(meta["confirmed_best"]) == {"bo", "random"}
    assert all(0 <= v <= 0.45 for v in meta["confirmed_best"].values())  # capped_fraction's range
    assert "## Confirmed with" in (out / "report.md").read_text()
    # decoded in worker processes, not the flow's: each run's cluster did some of the work
    worker_pids = {int(p.name) for p in pids.iterdir()} - {proc.pid, rerun.pid}
    assert len(worker_pids) >= 2, (proc.pid, rerun.pid, sorted(worker_pids))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_against_a_prefect_server_on_localhost(tmp_path):
    port = _free_port()
    env = _env(tmp_path)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, "server did not start"
            time.sleep(0.5)
        cfg = _config(tmp_path / "c.yaml", bo={"budget": 4, "initial": 2}, baselines=[])
        out = tmp_path / "out"
        proc = _optimize(cfg, out, _env(tmp_path, PREFECT_API_URL=api))
        _stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        assert len(_rows(out)) == 4
        assert not (out / ".prefect").exists()  # not embedded: no local Prefect home
        req = urllib.request.Request(
            f"{api}/flow_runs/filter",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.loads(r.read())
        assert any(run["state_type"] == "COMPLETED" for run in runs)
    finally:
        server.send_signal(signal.SIGTERM)  # stop it by its PID
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # anything it left behind
        except ProcessLookupError:
            pass
    assert server.poll() is not None


@pytest.fixture(autouse=True)
def _no_prefect_env_leak(monkeypatch):
    """In-process runs must not leave Prefect settings in this process's environment."""
    for key in list(os.environ):
        if key.startswith("PREFECT_"):
            monkeypatch.delenv(key)
