"""Helpers shared by the test files."""
import signal, subprocess, tempfile, time
from pathlib import Path
import pytest


def _kill_when_file_appears(cmd: list, path: Path, timeout: float, poll: float = 0.1, **popen) -> tuple[bool, str, float]:
    """Start `cmd`, wait until `path` exists (or the process ends, or `timeout` seconds pass), then SIGKILL it: the
    hardest way a run can end, with no chance to clean up. Returns (did the file appear, the process's output, seconds
    waited). The output goes to a temporary file, not a pipe, so a chatty process cannot block on a full pipe."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, **popen)
        t0 = time.time()
        try:
            while not path.exists() and proc.poll() is None and time.time() - t0 < timeout: time.sleep(poll)
        finally:
            proc.send_signal(signal.SIGKILL); proc.wait()
        seconds = time.time() - t0
        log.seek(0)
        return path.exists(), log.read().decode(errors='replace'), seconds


@pytest.fixture
def kill_when_file_appears():
    "`kill_when_file_appears(cmd, path, timeout)`: run cmd until `path` appears, then SIGKILL it; (appeared, output, seconds)."
    return _kill_when_file_appears
