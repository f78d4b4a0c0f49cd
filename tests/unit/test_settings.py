"""Settings come from CLASSTRACE_* variables and flags, and bad values name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from classtrace.errors import ConfigError
from classtrace.settings import Settings, kafka_passthrough, redact_url


def test_defaults_are_the_embedded_stack():
    settings = Settings.load({}, environ={})
    assert settings.embedded_broker
    assert settings.kafka_bootstrap is None
    assert settings.chdb_path == (Path(".classtrace") / "chdb").resolve()
    assert settings.gateway_port == 8080


def test_flags_override_environment():
    env = {"CLASSTRACE_PARTITIONS": "8", "CLASSTRACE_GATEWAY_PORT": "9000"}
    settings = Settings.load({"partitions": 2}, environ=env)
    assert settings.partitions == 2
    assert settings.gateway_port == 9000


def test_server_url_has_no_chdb_path_and_is_redacted():
    url = "https://writer:s3cret@ch.example.edu:8443/classtrace"
    settings = Settings.load({}, environ={"CLASSTRACE_CLICKHOUSE_URL": url})
    assert settings.chdb_path is None
    assert "s3cret" not in settings.describe()["clickhouse_url"]
    assert redact_url(url) == "https://writer:***@ch.example.edu:8443/classtrace"


def test_chdb_url_selects_the_embedded_directory(tmp_path):
    settings = Settings.load({}, environ={"CLASSTRACE_CLICKHOUSE_URL": f"chdb://{tmp_path}/store"})
    assert settings.chdb_path == (tmp_path / "store").resolve()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLASSTRACE_KAFKA_BOOTSTRAP": "kafka-without-port"}, "CLASSTRACE_KAFKA_BOOTSTRAP"),
        ({"CLASSTRACE_CLICKHOUSE_URL": "mysql://db:3306"}, "scheme must be one of"),
        ({"CLASSTRACE_CLICKHOUSE_URL": "http://:8123"}, "no host"),
        ({"CLASSTRACE_CLICKHOUSE_URL": "http://h:notaport/db"}, "bad port"),
        ({"CLASSTRACE_PARTITIONS": "0"}, "CLASSTRACE_PARTITIONS"),
        ({"CLASSTRACE_GATEWAY_PORT": "70000"}, "CLASSTRACE_GATEWAY_PORT"),
        ({"CLASSTRACE_LOG_LEVEL": "LOUD"}, "unknown log level"),
    ],
)
def test_malformed_settings_name_themselves(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load({}, environ=env)


def test_kafka_security_settings_pass_through():
    env = {
        "CLASSTRACE_KAFKA_BOOTSTRAP": "k1:9092",
        "CLASSTRACE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CLASSTRACE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    }
    assert kafka_passthrough(env) == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    assert Settings.load({}, environ=env).kafka_options["sasl.mechanism"] == "SCRAM-SHA-512"


def test_secret_key_is_not_printed():
    settings = Settings.load({}, environ={"CLASSTRACE_REGION_SECRET": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert settings.region_secret is not None
    assert settings.region_secret.get_secret_value() == "hunter2"


def test_settings_flags_work_before_and_after_a_nested_action(tmp_path):
    from classtrace.cli import build_parser
    from classtrace.cli.common import settings_from_args

    parser = build_parser()
    before = parser.parse_args(["viewers", "--data-dir", str(tmp_path), "list"])
    after = parser.parse_args(["viewers", "list", "--data-dir", str(tmp_path)])
    assert settings_from_args(before).data_dir == tmp_path
    assert settings_from_args(after).data_dir == tmp_path
