"""The design campaign as a real Prefect flow, in real processes.

Each `mdesign optimize` process starts Prefect's embedded server (~6-14 s), so these tests are
few and each checks a lot: a SIGKILLed campaign resumes without loss or duplicates, a 2-worker
Dask cluster does the evaluations, and a `prefect server start` on 127.0.0.1 receives the flow.
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
    assert_input_error(run_cli("optimize", "--config", cfg, "--budget", "1"), "--budget")
    (tmp_path / "file").write_text("x")
    assert_input_error(run_cli("optimize", "--config", cfg, "--out", tmp_path / "file"), "--out")
    assert not out.exists()


def test_sigkill_mid_batch_then_resume_loses_and_duplicates_nothing(tmp_path):
    cfg = _config(tmp_path / "c.yaml", generator={"factory_params": {"delay": 0.4}})
    out = tmp_path / "out"
    env = _env(tmp_path)
    proc = _optimize(cfg, out, env)
    deadline = time.time() + 180
    while len(_rows(out)) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGKILL)  # the campaign and everything it started
    proc.wait()
    before = _rows(out)
    assert 5 <= len(before) < 16
    rerun = _optimize(cfg, out, env)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "report:" in stdout
    rows = _rows(out)
    assert rows[: len(before)] == before  # every completed evaluation kept as it was
    assert len(rows) == 16 and len({r["id"] for r in rows}) == 16
    latents = [r["latent"] for r in rows]
    assert len(set(latents)) == 16  # nothing evaluated twice
    for m in ("bo", "random"):
        assert sum(r["method"] == m for r in rows) == 8
    assert (out / "report.md").exists() and (out / "best.npz").exists()


def test_two_dask_workers_do_the_evaluations(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cfg = _config(
        tmp_path / "c.yaml",
        generator={"factory_params": {"pid_dir": str(pids)}},
        bo={"budget": 6, "initial": 4},
    )
    out = tmp_path / "out"
    proc = _optimize(cfg, out, _env(tmp_path), "--workers", "2")
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert len(_rows(out)) == 12
    worker_pids = {int(p.name) for p in pids.iterdir()} - {proc.pid}
    assert len(worker_pids) >= 2  # decoded in two worker processes, not the flow's


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
