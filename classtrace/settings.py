"""The one typed, frozen settings object of a classtrace process (docs/DESIGN.md §3).

Built once at the entry point from ``CLASSTRACE_*`` environment variables and CLI flags (flags win);
library code receives it, or the values it needs, as arguments and never reads ``os.environ``.
Each field documents its env var; ``classtrace --help`` shows the same text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError

from classtrace.errors import ConfigError
from classtrace.retention import check_overrides, overrides_from_env

__all__ = ["ENV_PREFIX", "Settings", "kafka_passthrough", "redact_url"]

ENV_PREFIX = "CLASSTRACE_"
_KAFKA_PREFIX = ENV_PREFIX + "KAFKA_"
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_CH_SCHEMES = ("http", "https", "chdb")


class Settings(BaseModel):
    """Settings of one classtrace process; see docs/DESIGN.md §3 for the contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers host:port[,host:port] (CLASSTRACE_KAFKA_BOOTSTRAP); "
        "unset = the embedded Tansu broker of `classtrace up`.",
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="ClickHouse: http(s)://user:pass@host:port/db for a server, chdb:///path for "
        "embedded (CLASSTRACE_CLICKHOUSE_URL); unset = embedded chDB under the data dir.",
    )
    data_dir: Path = Field(
        default=Path(".classtrace"),
        description="Where the embedded stack keeps chDB, registries and its runtime file "
        "(CLASSTRACE_DATA_DIR).",
    )
    partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partitions of the topics classtrace creates (CLASSTRACE_PARTITIONS).",
    )
    gateway_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="HTTP port of the ingest gateway and dashboard (CLASSTRACE_GATEWAY_PORT); "
        "0 picks a free port.",
    )
    region_secret: SecretStr | None = Field(
        default=None,
        description="Secret each school's pseudonym key is derived from (CLASSTRACE_REGION_SECRET, "
        "≥ 16 bytes); read only by `devices key` and `simulate`, never by a server role "
        "(docs/KEYS.md). Unset = a random secret kept in <data dir>/region.secret (0600).",
    )
    record_key: SecretStr | None = Field(
        default=None,
        description="HMAC key(s) the stack's roles sign and verify Kafka records with "
        "(CLASSTRACE_RECORD_KEY: 64 hex characters, several comma-separated to rotate, the first "
        "signs); classtrace/signing.py. Unset with the embedded broker = <data dir>/record.key "
        "(0600); unset with CLASSTRACE_KAFKA_BOOTSTRAP = off (Kafka ACLs guard the topics).",
    )
    log_level: str = Field(
        default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR (CLASSTRACE_LOG_LEVEL)."
    )
    deadletter_keep_raw: bool = Field(
        default=False,
        description="Keep the bytes of rejected events and undecodable records in dead letters "
        "(CLASSTRACE_DEADLETTER_KEEP_RAW); off = a SHA-256 and a length only. A non-pseudonym "
        "student_id is replaced either way. Turn on only to debug a device, and give dead_letters.raw "
        "a short retention (docs/DESIGN.md §4).",
    )
    broker_storage: Literal["disk", "memory"] = Field(
        default="memory",
        description="Where the embedded Tansu broker keeps its log (CLASSTRACE_BROKER_STORAGE). memory "
        "(default) = lost when the broker stops: a 200 is not durable against a broker crash. disk = "
        "EXPERIMENTAL: a local S3 endpoint (s3rver) under <data dir>/broker; survives a kill -9 at rest, "
        "but lost acknowledged events under load and runs ~12x slower (docs/FIELD-NOTES.md, issue 18).",
    )
    s3rver: Path | None = Field(
        default=None,
        description="The s3rver executable the disk broker needs (CLASSTRACE_S3RVER); unset = "
        "scripts/objectstore/node_modules/.bin/s3rver of a checkout, else s3rver on PATH.",
    )
    state_horizon_s: float = Field(
        default=7 * 86_400.0,
        gt=0,
        description="Worker state horizon in seconds (CLASSTRACE_STATE_HORIZON_S): a lesson or a "
        "device is deleted, with a changelog tombstone, once its latest event is this far behind its "
        "classroom's event time (docs/DESIGN.md §10). Default 7 days, validation's MAX_AGE; shorter "
        "only for `classtrace soak`'s compressed days.",
    )
    state_scan_s: float = Field(
        default=600.0,
        gt=0,
        description="How often, at most, the worker starts a pass over its whole lesson table for "
        "values beyond the horizon (CLASSTRACE_STATE_SCAN_S; docs/DESIGN.md §10).",
    )
    kafka_options: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka properties passed through from CLASSTRACE_KAFKA_<property> "
        "(e.g. CLASSTRACE_KAFKA_SECURITY_PROTOCOL=SASL_SSL → security.protocol).",
    )
    retention_days: dict[str, int] = Field(
        default_factory=dict,
        description="Retention overrides in days from CLASSTRACE_RETENTION_<KEY>_DAYS, e.g. "
        "CLASSTRACE_RETENTION_EVENTS_DAYS=90 or CLASSTRACE_RETENTION_EVENTS_TOPIC_DAYS=3; keys, "
        "defaults and reasons in docs/RETENTION.md (classtrace/retention.py). Unset = the default.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            if not _HOSTPORT.match(server.strip()):
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _check_clickhouse_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in _CH_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(_CH_SCHEMES)}, got {redact_url(value)!r}")
        if parts.scheme != "chdb" and not parts.hostname:
            raise ValueError(f"no host in {redact_url(value)!r}")
        if parts.scheme == "chdb" and not (parts.path or parts.netloc):
            raise ValueError("chdb URL needs a path, e.g. chdb:///var/lib/classtrace/chdb")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {redact_url(value)!r}") from exc
        return value

    @field_validator("retention_days")
    @classmethod
    def _check_retention(cls, value: dict[str, int]) -> dict[str, int]:
        return check_overrides(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build the settings from ``environ`` (default: the process environment) and flags.

        A malformed value raises :class:`ConfigError` naming the setting and its env var.
        """
        env = dict(os.environ if environ is None else environ)
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        given.setdefault("kafka_options", kafka_passthrough(env))
        if "retention_days" not in given:  # a misspelt CLASSTRACE_RETENTION_* is a ConfigError here
            given["retention_days"] = overrides_from_env(env)
        values = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        try:
            return _from_env(cls, values, given)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "settings"
            raise ConfigError(
                f"{name} ({ENV_PREFIX}{name.upper()})", first["msg"].removeprefix("Value error, ")
            ) from None

    @property
    def chdb_path(self) -> Path | None:
        """The embedded chDB directory, or None when ClickHouse is a server."""
        if self.clickhouse_url is None:
            return (self.data_dir / "chdb").resolve()
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme != "chdb":
            return None
        return Path(parts.netloc + parts.path).resolve()

    @property
    def embedded_broker(self) -> bool:
        """True when this process should use (or start) the embedded Tansu broker."""
        return self.kafka_bootstrap is None

    def describe(self) -> dict[str, str]:
        """The settings as strings with secrets and passwords redacted, for logs and `--help`."""
        return {
            "kafka_bootstrap": self.kafka_bootstrap or "(embedded)",
            "clickhouse_url": redact_url(self.clickhouse_url) if self.clickhouse_url else "(embedded)",
            "data_dir": str(self.data_dir),
            "partitions": str(self.partitions),
            "gateway_port": str(self.gateway_port),
            "region_secret": "(set)" if self.region_secret else "(data dir)",
            "record_key": "(set)" if self.record_key else "(data dir or off)",
        }


def _from_env(cls: type[Settings], env: Mapping[str, str], given: dict[str, Any]) -> Settings:
    """Construct from an explicit env mapping, so tests never depend on the real environment."""
    fields = set(cls.model_fields) - {"kafka_options", "retention_days"}
    from_env: dict[str, Any] = {}
    for name in fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and name not in given:
            from_env[name] = raw
    return cls.model_validate({**from_env, **given})


def kafka_passthrough(environ: Mapping[str, str]) -> dict[str, str]:
    """librdkafka properties from ``CLASSTRACE_KAFKA_<PROPERTY>`` (underscores become dots).

    ``CLASSTRACE_KAFKA_BOOTSTRAP`` is the bootstrap setting itself, not a passthrough.
    """
    options: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(_KAFKA_PREFIX) and key != _KAFKA_PREFIX + "BOOTSTRAP":
            prop = key[len(_KAFKA_PREFIX) :].lower().replace("_", ".")
            if prop:
                options[prop] = value
    return options


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, safe to log or print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
