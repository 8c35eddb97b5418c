import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mdesign.errors import InputError
from mdesign.optimization.lock import LOCK_NAME, campaign_lock

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from mdesign.optimization.lock import campaign_lock\n"
    "with campaign_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)
TRY = (
    "import sys\n"
    "from mdesign.errors import InputError\n"
    "from mdesign.optimization.lock import campaign_lock\n"
    "try:\n"
    "    with campaign_lock(sys.argv[1], name='--out'):\n"
    "        print('acquired')\n"
    "except InputError as exc:\n"
    "    print(exc)\n"
)


def _python(code: str, *args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True, **kw)


def test_a_second_process_is_refused_while_the_holder_lives_and_not_after_sigkill(tmp_path):
    folder = tmp_path / "campaign"
    holder = _python(HOLD, folder, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _python(TRY, folder, stdout=subprocess.PIPE)
        out, _ = second.communicate(timeout=60)
        assert holder.poll() is None  # refused while the holder still runs: no waiting
        assert f"--out: {folder}: in use by another running campaign (process {holder.pid})" in out
        with pytest.raises(InputError, match="in use"):  # this process too
            with campaign_lock(folder):
                pass
        os.kill(holder.pid, signal.SIGKILL)  # no chance to clean up
        holder.wait()
        with campaign_lock(folder) as path:  # the kernel released it
            assert path == folder.resolve() / LOCK_NAME
            assert path.read_text() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_reentrant_in_one_process_and_released_by_the_outermost(tmp_path):
    folder = tmp_path / "campaign"
    with campaign_lock(folder):
        with campaign_lock(folder):  # the CLI holds it, then the flow's run_campaign
            pass
        out, _ = _python(TRY, folder, stdout=subprocess.PIPE).communicate(timeout=60)
        assert "in use" in out  # still held after the inner block
    assert not (folder / LOCK_NAME).exists()  # a folder at rest holds no lock file
    out, _ = _python(TRY, folder, stdout=subprocess.PIPE).communicate(timeout=60)
    assert out.strip() == "acquired"
