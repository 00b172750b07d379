"""Fixtures: the local AWS emulator (moto, from the test venv) on a free
loopback port behind the strict proxy (``harmonix-proxy``, built by
``cargo test``: it refuses what AWS refuses and moto accepts, such as an
inline template over 51,200 bytes), dummy credentials, and example specs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "specs"


def _moto_server() -> str:
    explicit = os.environ.get("HARMONIX_MOTO_SERVER")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
    if not found:
        pytest.fail("moto_server not found: run scripts/setup (it installs moto into .venv)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Proxy:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _start_proxy(upstream: int) -> _Proxy:
    """``harmonix-proxy`` in front of the emulator (AWS's limits on)."""
    binary = Path(os.environ.get("HARMONIX_PROXY", REPO / "target" / "debug" / "harmonix-proxy"))
    if not binary.exists():
        pytest.fail(f"{binary} not found: `cargo test` (or `cargo build -p harmonix-tests`) builds it")
    proc = subprocess.Popen(
        [str(binary), "--upstream", str(upstream)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        pytest.fail(f"harmonix-proxy did not start: {line!r}")
    return _Proxy(proc, match.group(1))


@pytest.fixture()
def emulator() -> Iterator[str]:
    """A fresh moto server; its endpoint URL."""
    port = _free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"moto_server exited: {log.read().decode(errors='replace')}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto_server did not answer within 30 s")
            time.sleep(0.1)
    proxy = _start_proxy(port)
    try:
        yield proxy.url
    finally:
        proxy.stop()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static dummy credentials; no profile, no real endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def example_text(name: str, existing_vpc: bool = False) -> str:
    """An example spec's text; with ``existing_vpc``, its new VPC replaced
    by an existing one (the emulator cannot delete VPCs it created)."""
    text = (EXAMPLES / name).read_text()
    if existing_vpc:
        text = re.sub(
            r"(?m)^    vpc:\n(?:      .*\n)+",
            "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
            text,
        )
    return text
