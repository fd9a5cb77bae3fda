"""Fixtures of the OpenAI-API tests of `braid serve`.

With BRAID_URL set (e.g. http://127.0.0.1:8080/v1) the tests run against that server; give its keys
in BRAID_API_KEY / BRAID_ADMIN_KEY (tests that need a key the server does not enforce are skipped).

Without BRAID_URL this file starts `.build/release/braid serve` itself on a free loopback port
(BRAID_TEST_PORT picks the port; tests that start more servers take the next ones) with --api-key test-key and --admin-key admin-key, waits for
/health, points BRAID_URL at it, and at the end stops it with SIGTERM and checks that it exits 0.
BRAID_BIN overrides the binary (default: .build/release/braid of this checkout).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key"
ADMIN_KEY = "admin-key"
DEFAULT_URL = "http://127.0.0.1:8080/v1"


@dataclass
class Server:
    api_url: str  # …/v1
    base_url: str  # scheme://host:port
    api_key: str | None  # None: unknown / not enforced
    admin_key: str | None
    managed: bool  # started by this conftest
    binary: Path

    def headers(self, key: str | None = "default") -> dict[str, str]:
        key = self.api_key if key == "default" else key
        return {"Authorization": f"Bearer {key}"} if key else {}


def _free_port() -> int:
    if os.environ.get("BRAID_TEST_PORT"):
        return int(os.environ["BRAID_TEST_PORT"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path | None, n: int = 30) -> str:
    """The end of the server's log, with any crash report's first lines."""
    try:
        lines = path.read_text(errors="replace").splitlines() if path else []
    except OSError:
        return ""
    crash = [i for i, line in enumerate(lines) if "Fatal error" in line or "Could not cast" in line or "Program crashed" in line]
    if crash:
        return "\n".join(lines[max(0, crash[0] - 5): crash[0] + 12])
    return "\n".join(lines[-n:])


def _wait_ready(base: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"braid serve exited with {proc.returncode} before it was ready:\n{_tail(log)}")
        try:
            r = httpx.get(f"{base}/health", timeout=5)
            last = f"{r.status_code} {r.text}"
            if r.status_code == 200 and r.json().get("status") == "ok":
                return
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    raise RuntimeError(f"braid serve at {base} not ready after {timeout:.0f} s (last: {last})\n{_tail(log) if log else ''}")


class Spawned:
    """A `braid serve` started by the tests; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, binary: Path, port: int, args: list[str]):
        self.base_url = f"http://127.0.0.1:{port}"
        with socket.socket() as probe:  # a busy port would let /health of another server answer
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as e:
                raise RuntimeError(f"port {port} is busy ({e}): set BRAID_TEST_PORT to a free one") from None
        self.log = Path(tempfile.mkstemp(prefix="braid-serve-", suffix=".log")[1])
        env = {k: v for k, v in os.environ.items() if k not in ("BRAID_API_KEY", "BRAID_ADMIN_KEY")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_ready(self.base_url, self.proc, self.log)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def tail(self) -> str:
        return _tail(self.log)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"braid serve did not exit within {timeout:.0f} s of SIGTERM:\n{self.tail()}") from None
        return self.proc.returncode


@pytest.fixture(scope="session")
def binary() -> Path:
    return Path(os.environ.get("BRAID_BIN", ROOT / ".build/release/braid"))


@pytest.fixture(scope="session")
def spawn(binary):
    """Starts extra servers for one test: `with spawn([...flags]) as s:`; each must exit 0 on SIGTERM."""
    import contextlib

    ports = itertools.count(int(os.environ["BRAID_TEST_PORT"]) + 1) if os.environ.get("BRAID_TEST_PORT") else None

    @contextlib.contextmanager
    def start(args: list[str]):
        if not binary.exists():
            pytest.skip(f"{binary} not found")
        s = Spawned(binary, next(ports) if ports else _free_port(), args)
        try:
            yield s
        finally:
            code = s.stop()
        assert code == 0, f"braid serve {' '.join(args)} exited with {code} after SIGTERM:\n{s.tail()}"
        s.log.unlink(missing_ok=True)

    return start


@pytest.fixture(scope="session")
def server(binary):
    url = os.environ.get("BRAID_URL")
    if url:
        url = url.rstrip("/")
        base = url[: -len("/v1")] if url.endswith("/v1") else url
        _wait_ready(base, None, None, timeout=30)
        yield Server(api_url=url, base_url=base, api_key=os.environ.get("BRAID_API_KEY"),
                     admin_key=os.environ.get("BRAID_ADMIN_KEY"), managed=False, binary=binary)
        return

    if not binary.exists():
        pytest.exit(f"{binary} not found: build it (swift build -c release) or set BRAID_URL", returncode=2)
    s = Spawned(binary, _free_port(), ["--api-key", API_KEY, "--admin-key", ADMIN_KEY])
    os.environ["BRAID_URL"] = f"{s.base_url}/v1"
    os.environ["BRAID_API_KEY"] = API_KEY
    os.environ["BRAID_ADMIN_KEY"] = ADMIN_KEY
    try:
        yield Server(api_url=f"{s.base_url}/v1", base_url=s.base_url, api_key=API_KEY, admin_key=ADMIN_KEY,
                     managed=True, binary=binary)
    finally:
        for name in ("BRAID_URL", "BRAID_API_KEY", "BRAID_ADMIN_KEY"):
            os.environ.pop(name, None)
        code = s.stop()
    assert code == 0, f"braid serve exited with {code} after SIGTERM:\n{s.tail()}"
    s.log.unlink(missing_ok=True)
