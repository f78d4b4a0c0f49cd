"""The embedded stack that ``classtrace up`` runs: what starts, in which order, and how it stops.

Start order follows the data flow's dependencies: broker and topics, ClickHouse and migrations,
the loopback ClickHouse-HTTP endpoint for other processes, the registries restored from the data
dir (Tansu forgets topics on restart), the sink, then the supervised gateway and worker. Stop is
the reverse, so every role drains into parts that are still up.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from typing import Any

import httpx

from classtrace.broker import EmbeddedBroker, free_port
from classtrace.errors import BrokerError, ClasstraceError, ConfigError
from classtrace.ids import check_region_secret
from classtrace.kafka import align_topic_configs, check_reachable, ensure_topics
from classtrace.objectstore import LocalObjectStore, find_s3rver
from classtrace.plugins import (
    EMBEDDED,
    AdminTokenHook,
    EmbeddedSink,
    RestoreHook,
    SinkFactory,
    declared,
    load,
)
from classtrace.runtime import Runtime
from classtrace.settings import Settings
from classtrace.signing import RecordKey, new_key_text
from classtrace.supervisor import ChildSpec, Supervisor, classtrace_argv
from classtrace.topics import topic_specs

__all__ = [
    "DEVICE_SECRETS",
    "RECORD_KEY_FILE",
    "REGION_SECRET_FILE",
    "EmbeddedStack",
    "record_key",
    "region_secret",
]

logger = logging.getLogger(__name__)


REGION_SECRET_FILE = "region.secret"
RECORD_KEY_FILE = "record.key"
# What no server child may inherit from `up`'s own environment: the region secret, and the single
# key of before docs/KEYS.md, in case a deployment still sets it.
DEVICE_SECRETS = ("CLASSTRACE_REGION_SECRET", "CLASSTRACE_PSEUDONYM_KEY")


def region_secret(settings: Settings) -> bytes:
    """The region secret school keys derive from: the configured one, else the data dir's file.

    The file is created on first use with 32 random bytes (as hex), mode 0600; one readable by
    others is refused rather than used, since it would expose every school (docs/KEYS.md). Raises
    ConfigError for that, or for a secret too short to derive keys from.
    """
    if settings.region_secret is not None:
        return _checked(settings.region_secret.get_secret_value().encode(), "CLASSTRACE_REGION_SECRET")
    path = settings.data_dir / REGION_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"region_secret ({path})", f"mode {mode:03o} lets group or others at it; run chmod 600 {path}"
        )
    return _checked(path.read_text().strip().encode(), str(path))


def record_key(settings: Settings, *, create: bool = False) -> RecordKey | None:
    """The key this process signs and verifies Kafka records with (classtrace/signing.py).

    ``CLASSTRACE_RECORD_KEY`` when set (the children of ``up`` get it so). Else, on the embedded
    broker (no ``CLASSTRACE_KAFKA_BOOTSTRAP``: the ``up`` of this data dir), the data dir's
    ``record.key``, which ``up`` creates (``create``) with mode 0600 like the region secret: the
    stack's owner holds it, other users on the host do not. Else None: signing is off, and the
    cluster's ACLs guard its topics (infra/kafka/acls.py). Raises ConfigError for a malformed key
    or a key file others may read.
    """
    if settings.record_key is not None:
        return _parsed(settings.record_key.get_secret_value(), "CLASSTRACE_RECORD_KEY")
    if not settings.embedded_broker:
        return None
    path = settings.data_dir / RECORD_KEY_FILE
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_key_text())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"record_key ({path})", f"mode {mode:03o} lets group or others at it; run chmod 600 {path}"
        )
    return _parsed(path.read_text().strip(), str(path))


def _parsed(text: str, source: str) -> RecordKey:
    try:
        return RecordKey.parse(text)
    except ValueError as exc:
        raise ConfigError(f"record_key ({source})", str(exc)) from None


def _checked(secret: bytes, source: str) -> bytes:
    try:
        check_region_secret(secret)
    except ValueError as exc:
        raise ConfigError(f"region_secret ({source})", str(exc)) from None
    return secret


class EmbeddedStack:
    """Every classtrace role on one machine, around one Tansu broker and one chDB engine."""

    def __init__(self, settings: Settings, with_worker: bool = True) -> None:
        self.settings = settings
        self.with_worker = with_worker
        self.data_dir = settings.data_dir.resolve()
        self.broker: EmbeddedBroker | None = None
        self.object_store: LocalObjectStore | None = None
        self.bootstrap = settings.kafka_bootstrap or ""
        self.client: Any = None
        self.chserver: Any = None
        self.sink: EmbeddedSink | None = None
        self.sink_client: Any = None
        # Children get no device secret, whatever this process's environment holds.
        base_env = {k: v for k, v in os.environ.items() if k not in DEVICE_SECRETS}
        self.supervisor = Supervisor(self.data_dir / "logs", base_env)
        self.gateway_url = ""
        self._viewer_token = ""
        # Created before anything is published: every record the stack writes is signed with it.
        self.record_key = record_key(settings, create=True)
        self._hooks: dict[str, EntryPoint] | None = None

    # -- start -------------------------------------------------------------------------------
    def start(self) -> Runtime:
        """Start every part; returns where they listen (for the runtime file)."""
        self._start_broker()
        self._start_store()
        self._restore_registries()
        self._start_sink()
        self._start_children()
        return Runtime(
            pid=os.getpid(),
            kafka_bootstrap=self.bootstrap,
            clickhouse_http_url=self.chserver.url if self.chserver else "",
            gateway_url=self.gateway_url,
            dashboard_url=self.gateway_url + "/",
            started_at=datetime.now(UTC).isoformat(),
        )

    def _start_broker(self) -> None:
        options = self.settings.kafka_options
        if self.settings.embedded_broker:
            logs = self.data_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            storage = None
            if self.settings.broker_storage == "disk":
                self.object_store = LocalObjectStore(
                    self.data_dir / "broker",
                    find_s3rver(self.settings.s3rver),
                    log_path=logs / "objectstore.log",
                ).start()
                storage = self.object_store.tansu_env()
            else:
                logger.warning(
                    "the embedded broker keeps its log IN MEMORY (CLASSTRACE_BROKER_STORAGE=memory, the "
                    "default): a broker crash loses every event not yet in ClickHouse (docs/FIELD-NOTES.md)"
                )
            self.broker = EmbeddedBroker(log_path=logs / "broker.log", storage_env=storage).start()
            self.bootstrap = self.broker.bootstrap
        else:
            check_reachable(self.bootstrap, options)
        # created first here, so with the configured retention (docs/RETENTION.md); other roles only
        # create what is missing
        specs = topic_specs(self.settings.retention_days)
        ensure_topics(self.bootstrap, self.settings.partitions, options, specs)
        align_topic_configs(self.bootstrap, specs, options)

    def _start_store(self) -> None:
        from classtrace.chserver import ChdbHttpServer
        from classtrace.clickhouse import connect
        from classtrace.migrate import apply_migrations, apply_retention

        self.client = connect(self.settings)
        applied = apply_migrations(self.client)
        if applied:
            logger.info("applied migrations %s", applied)
        apply_retention(self.client, retention_days=self.settings.retention_days)
        if self.settings.chdb_path is not None:
            self.chserver = ChdbHttpServer(self.client, password=secrets.token_urlsafe(24))
            self.chserver.start()

    def _restore_registries(self) -> None:
        # The registries belong to producers/ and readers/: reached through their entry points.
        restore_devices: RestoreHook = self._hook("restore_devices")
        signed = self.record_key
        options = self.settings.kafka_options
        restored = restore_devices(self.data_dir, self.bootstrap, options, record_key=signed)
        logger.info("restored device registry devices=%s", restored)
        restore_viewers: RestoreHook = self._hook("restore_viewers")
        restore_viewers(self.data_dir, self.bootstrap, options, record_key=signed)
        admin_token: AdminTokenHook = self._hook("admin_token")
        self._viewer_token = admin_token(self.data_dir, self.bootstrap, options, record_key=signed)

    def _start_sink(self) -> None:
        from classtrace.clickhouse import connect

        make_sink: SinkFactory = self._hook("sink")
        # Its own handle on the engine: a chDB client serialises its calls, and the sink's inserts
        # should not queue behind the queries other processes send through the HTTP endpoint.
        self.sink_client = connect(self.settings)
        self.sink = make_sink(
            self.sink_client,
            self.bootstrap,
            self.settings.kafka_options,
            record_key=self.record_key,
            keep_raw=self.settings.deadletter_keep_raw,
        )
        self.sink.start()

    def _hook(self, name: str) -> Any:
        """The ``classtrace.embedded`` hook ``name`` (classtrace/plugins.py): the roles up starts."""
        if self._hooks is None:
            self._hooks = declared(EMBEDDED)
        return load(EMBEDDED, name, self._hooks)

    def _child_env(self) -> dict[str, str]:
        """What every child runs with: no pseudonym key or region secret (docs/KEYS.md), the
        record key (each child is a role that writes or reads signed records), and this stack's
        dead-letter setting, so the gateway and worker keep raw bytes exactly when its sink does."""
        env = {
            "CLASSTRACE_KAFKA_BOOTSTRAP": self.bootstrap,
            "CLASSTRACE_DATA_DIR": str(self.data_dir),
            "CLASSTRACE_PARTITIONS": str(self.settings.partitions),
            "CLASSTRACE_LOG_LEVEL": self.settings.log_level,
            "CLASSTRACE_DEADLETTER_KEEP_RAW": str(self.settings.deadletter_keep_raw).lower(),
            "PYTHONUNBUFFERED": "1",
        }
        if self.record_key is not None:
            env["CLASSTRACE_RECORD_KEY"] = ",".join(k.hex() for k in self.record_key.keys)
        return env

    def _start_children(self) -> None:
        env = self._child_env()
        # 0 = a free port, chosen here: the gateway child and this process must agree on it.
        port = self.settings.gateway_port or free_port()
        self.gateway_url = f"http://127.0.0.1:{port}"
        self.supervisor.add(
            ChildSpec(
                "gateway",
                classtrace_argv("gateway", "--with-dashboard"),
                {**env, "CLASSTRACE_GATEWAY_PORT": str(port)},
            )
        )
        if self.with_worker:
            self.supervisor.add(ChildSpec("worker", classtrace_argv("worker"), env))
        self._wait_http(self.gateway_url + "/healthz", "gateway")

    def _wait_http(self, url: str, role: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ClasstraceError(
            f"{role} did not answer {url} within {timeout:.0f} s; see {self.data_dir / 'logs' / role}.log"
        )

    # -- run ---------------------------------------------------------------------------------
    def viewer_url(self) -> str:
        """The dashboard URL with the all-schools viewer token (printed like Jupyter's)."""
        return f"{self.gateway_url}/?token={self._viewer_token}"

    def simulate(self, classrooms: int, lessons: int, seed: int | None, speed: float | None) -> None:
        """Start the simulator as a run-to-completion child streaming into the gateway."""
        argv = ["simulate", "--classrooms", str(classrooms), "--target", "gateway", "--quiet"]
        if lessons:
            argv += ["--lessons", str(lessons)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if speed is not None:
            argv += ["--speed", str(speed)]
        env = self._child_env()
        if self.settings.region_secret is not None:  # else it reads the data dir's file itself
            env["CLASSTRACE_REGION_SECRET"] = self.settings.region_secret.get_secret_value()
        self.supervisor.add(ChildSpec("simulate", classtrace_argv(*argv), env, restart=False))

    def check(self) -> None:
        """Heal a durable broker that died; raise when a part that cannot be restarted has died.

        A broker over the object store restarts on its port with its log intact, and its clients
        reconnect. A memory broker's log is gone with it: the stack stops rather than carry on
        with a broker that lost acknowledged events.
        """
        if self.object_store is not None and not self.object_store.alive():
            logger.error("the object store exited; restarting it and the broker")
            self.object_store.start()
            if self.broker is not None:
                self.broker.storage_env = self.object_store.tansu_env()
                self.broker.restart()
        if self.broker is not None and not self.broker.alive():
            if not self.broker.durable:
                raise BrokerError(f"the embedded broker exited; see {self.data_dir / 'logs' / 'broker.log'}")
            self.broker.restart()
            logger.error("the embedded broker exited and was restarted restarts=%d", self.broker.restarts)
        if self.sink is not None and not self.sink.alive():
            raise ClasstraceError("the ClickHouse sink stopped; see the log above")

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop in reverse order: children, sink (drains), store endpoint, broker."""
        self.supervisor.stop()
        if self.sink is not None:
            self.sink.stop()
        if self.chserver is not None:
            self.chserver.stop()
        for client in (self.sink_client, self.client):
            if client is not None:
                client.close()
        if self.broker is not None:
            self.broker.stop()
        if self.object_store is not None:
            self.object_store.stop()
