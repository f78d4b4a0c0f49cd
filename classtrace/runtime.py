"""The runtime file through which a running ``classtrace up`` is found by other commands.

``classtrace up`` writes ``<data dir>/runtime.json`` once its services listen and removes it on a
clean stop. ``devices``, ``simulate``, ``query``, ``report`` and ``loadtest`` read it, so no
address is copied by hand (docs/DESIGN.md §2). A file left by a killed stack is recognised as stale
by its pid and ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["RUNTIME_FILE", "Runtime", "clear_runtime", "read_runtime", "write_runtime"]

RUNTIME_FILE = "runtime.json"


@dataclass(frozen=True)
class Runtime:
    """Where the services of a running embedded stack listen."""

    pid: int
    kafka_bootstrap: str
    clickhouse_http_url: str = ""
    """ClickHouse-HTTP endpoint of the process that owns the chDB engine (other processes query
    through it, since chDB allows one engine per directory per process)."""
    gateway_url: str = ""
    dashboard_url: str = ""
    started_at: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / RUNTIME_FILE


def write_runtime(data_dir: Path, runtime: Runtime) -> Path:
    """Atomically publish ``runtime`` (readable by the owner only: it may name secrets' places)."""
    path = _path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(runtime), indent=2))
    tmp.chmod(0o600)
    os.replace(tmp, path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime(data_dir: Path) -> Runtime | None:
    """The running stack of ``data_dir``, or None when none runs (missing or stale file)."""
    path = _path(data_dir)
    try:
        data = json.loads(path.read_text())
        runtime = Runtime(**data)
    except (OSError, ValueError, TypeError):
        return None
    return runtime if _alive(runtime.pid) else None


def clear_runtime(data_dir: Path, pid: int | None = None) -> None:
    """Remove the runtime file (only if it is ``pid``'s, when given)."""
    path = _path(data_dir)
    with contextlib.suppress(OSError, ValueError, TypeError):
        if pid is not None and json.loads(path.read_text()).get("pid") != pid:
            return
        path.unlink()
