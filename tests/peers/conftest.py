"""Fixtures for the peer tests: a release `corecast` built once per session and started per test.

`corecast(*flags)` starts `corecast --listen 127.0.0.1:0 --workers 2 FLAGS...`, waits (10 s at
most) for its single stdout line `listening on 127.0.0.1:PORT` and returns a `Server`. Each test
gets its own process; at teardown it is stopped with SIGTERM (then SIGKILL after 5 s) and its exit
status and stderr are checked so that a crash or a hung drain fails the test that caused it.
"""

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LISTEN_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
BUILD_TIMEOUT_S = 1800


def _target_dir() -> Path:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return Path(json.loads(out)["target_directory"])


@pytest.fixture(scope="session")
def corecast_bin() -> Path:
    """Builds the release binary once per session (cargo is a no-op when it is up to date)."""
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "corecast"],
        cwd=ROOT,
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    path = _target_dir() / "release" / "corecast"
    assert path.is_file(), f"{path} missing after the build"
    return path


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    stderr_path: Path
    flags: tuple = field(default_factory=tuple)

    host = "127.0.0.1"

    def url(self, path: str = "/echo") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait for the drain, SIGKILL if it hangs. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


def _read_listening_line(proc: subprocess.Popen, deadline: float) -> str:
    """The first stdout line, without blocking past `deadline`."""
    fd = proc.stdout.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no 'listening on' line within {LISTEN_TIMEOUT_S}s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"server exited (status {proc.wait()}) before listening")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


@pytest.fixture
def corecast(corecast_bin, tmp_path):
    """Factory: `corecast("--compression", "dedicated")` → a running `Server`."""
    servers = []

    def start(*flags: str) -> Server:
        stderr_path = Path(tempfile.mkstemp(prefix="corecast-", suffix=".log", dir=tmp_path)[1])
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [str(corecast_bin), "--listen", "127.0.0.1:0", "--workers", "2", *flags],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        server = Server(proc=proc, port=0, stderr_path=stderr_path, flags=flags)
        servers.append(server)
        try:
            line = _read_listening_line(proc, time.monotonic() + LISTEN_TIMEOUT_S)
        except Exception as e:
            server.stop()
            raise RuntimeError(f"{e}; stderr:\n{server.stderr()}") from e
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", line.strip())
        assert m, f"unexpected first stdout line {line!r}"
        server.port = int(m.group(1))
        return server

    yield start

    problems = []
    for s in servers:
        was_running = s.proc.poll() is None
        rc = s.stop()
        if not was_running:
            problems.append(f"server {s.flags} died during the test (status {rc})")
        elif rc != 0:
            problems.append(f"server {s.flags} exited with status {rc} after SIGTERM")
        if "panicked" in s.stderr():
            problems.append(f"server {s.flags} panicked:\n{s.stderr()[-4000:]}")
    assert not problems, "\n".join(problems)
