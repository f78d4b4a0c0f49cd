"""Kafka principals and ACLs of the production infra (docs/DESIGN.md §9), checked statically.

infra/kafka/acls.py is the one definition; these tests hold it to the permission matrix below,
hold the generated files (compose init script, Strimzi KafkaUsers) to it, and check that every
role in compose and Kubernetes logs in as its own principal. No broker runs here: what Kafka
itself does with these ACLs is not exercised (infra/README.md, "What is not proven here").
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from classtrace.topics import (
    ACCESS,
    ALERTS,
    ALL_TOPICS,
    DEADLETTER,
    DEVICES,
    ERASURES,
    EVENTS,
    METRICS,
    VIEWERS,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"


def _load_acls() -> Any:
    spec = importlib.util.spec_from_file_location("classtrace_infra_kafka_acls", INFRA / "kafka" / "acls.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


acls = _load_acls()
Op, Resource = acls.Op, acls.Resource

GATEWAY, SDK, WORKER, SINK, DASHBOARD, CLI = (
    "classtrace-gateway",
    "classtrace-sdk",
    "classtrace-worker",
    "classtrace-sink",
    "classtrace-dashboard",
    "classtrace-cli",
)
ROLE_PRINCIPALS = {"gateway": GATEWAY, "worker": WORKER, "sink": SINK, "dashboard": DASHBOARD, "cli": CLI}

# The permission matrix on the contract topics: (topic, operation) -> the principals allowed.
# Everything not listed is denied to every principal (DELETE, ALTER, configs included).
READ, WRITE, CREATE = Op.READ, Op.WRITE, Op.CREATE
MATRIX: dict[tuple[str, Any], set[str]] = {
    (EVENTS, WRITE): {GATEWAY, SDK},
    (EVENTS, READ): {WORKER, SINK},
    (METRICS, WRITE): {WORKER},
    (METRICS, READ): {SINK, DASHBOARD},
    (DEADLETTER, WRITE): {GATEWAY, WORKER},
    (DEADLETTER, READ): {SINK},
    (DEVICES, WRITE): {CLI},
    (DEVICES, READ): {GATEWAY, CLI},
    (DEVICES, CREATE): {CLI},
    (VIEWERS, WRITE): {CLI},
    (VIEWERS, READ): {DASHBOARD, CLI},
    (VIEWERS, CREATE): {CLI},
    (ACCESS, WRITE): {GATEWAY, DASHBOARD, CLI},
    (ACCESS, READ): {SINK},
    (ALERTS, WRITE): {WORKER},
    (ALERTS, READ): {SINK, DASHBOARD},
    (ERASURES, WRITE): {CLI},
    (ERASURES, CREATE): {CLI},
    (ERASURES, READ): {WORKER, SINK},
}
TOPICS = [spec.name for spec in ALL_TOPICS]


def _expected(topic: str, op: Any) -> set[str]:
    if op is Op.DESCRIBE:  # implied by READ and WRITE, never granted alone here
        return MATRIX.get((topic, READ), set()) | MATRIX.get((topic, WRITE), set())
    return MATRIX.get((topic, op), set())


# -- the definition --------------------------------------------------------------------------------


def test_matrix_covers_every_topic_of_the_contract():
    assert {topic for topic, _ in MATRIX} == set(TOPICS)
    granted = {g.name for p in acls.PRINCIPALS for g in p.grants if g.resource is Resource.TOPIC}
    assert set(TOPICS) <= granted
    extra = granted - set(TOPICS)
    assert extra == {f"{acls.WORKER_APP_ID}-"}, "a topic ACL outside classtrace/topics.py and Faust's own"


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.value)
@pytest.mark.parametrize("topic", TOPICS)
def test_permission_matrix(topic, op):
    allowed = {p.name for p in acls.PRINCIPALS if acls.allows(p.name, Resource.TOPIC, topic, op)}
    assert allowed == _expected(topic, op), f"{op.value} on {topic}"


def test_only_the_validating_entry_points_write_events():
    writers = {p.name for p in acls.PRINCIPALS if acls.allows(p.name, Resource.TOPIC, EVENTS, WRITE)}
    assert writers == {GATEWAY, SDK}
    assert not acls.allows(WORKER, Resource.TOPIC, EVENTS, WRITE)
    assert not acls.allows(SINK, Resource.TOPIC, EVENTS, WRITE)


def test_only_the_cli_writes_the_registries():
    for registry in (DEVICES, VIEWERS):
        writers = {p.name for p in acls.PRINCIPALS if acls.allows(p.name, Resource.TOPIC, registry, WRITE)}
        assert writers == {CLI}, registry


def test_unknown_principal_and_prefix_lookalikes_are_denied():
    assert not acls.allows("classtrace", Resource.TOPIC, EVENTS, READ)
    assert not acls.allows("ANONYMOUS", Resource.TOPIC, EVENTS, WRITE)
    # a literal grant does not match a longer name, a prefixed one does not match a shorter one
    assert not acls.allows(GATEWAY, Resource.TOPIC, EVENTS + "x", WRITE)
    assert not acls.allows(WORKER, Resource.TOPIC, "classtrace-worke", CREATE)
    assert not acls.allows(WORKER, Resource.TOPIC, "classtrace.events.v1-changelog", CREATE)


def _source(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def test_worker_owns_its_faust_topics_only():
    app = _source("stream_processors/app.py")
    match = re.search(r'app_id: str = "([^"]+)"', app)
    assert match and match.group(1) == acls.WORKER_APP_ID
    assert f'default="{acls.WORKER_APP_ID}"' in _source("stream_processors/cli/worker.py") or (
        "--app-id" in _source("stream_processors/cli/worker.py")
    )
    tables = re.search(r"for name in \(([^)]*)\)", app)
    assert tables, "table names of build_app"
    names = re.findall(r'"([a-z_]+)"', tables.group(1))
    assert names
    # Faust: <id>-<table>-changelog (tables/base.py), <id>-__assignor-__leader (leader_assignor.py)
    internal = [f"{acls.WORKER_APP_ID}-{n}-changelog" for n in names]
    internal.append(f"{acls.WORKER_APP_ID}-__assignor-__leader")
    for topic in internal:
        for op in (READ, WRITE, CREATE):
            allowed = {p.name for p in acls.PRINCIPALS if acls.allows(p.name, Resource.TOPIC, topic, op)}
            assert allowed == {WORKER}, (topic, op)


def _group_readers(group: str) -> set[str]:
    return {p.name for p in acls.PRINCIPALS if acls.allows(p.name, Resource.GROUP, group, READ)}


def test_consumer_groups_of_the_code_are_granted_to_their_role_only():
    assert 'default="classtrace-sink"' in _source("sinks/cli/sink.py")
    assert _group_readers("classtrace-sink") == {SINK}
    assert _group_readers(acls.WORKER_APP_ID) == {WORKER}
    # Never-joined readers (assign() only) still carry a random group id: classtrace.kafka builds
    # classtrace-<name>-<hex> for CompactedTopicReader, the dashboard's TopicTail its own.
    assert 'f"classtrace-{name}-{uuid.uuid4().hex[:8]}"' in _source("classtrace/kafka.py")
    assert 'f"classtrace-dashboard-{uuid.uuid4().hex[:12]}"' in _source("readers/dashboard/feed.py")
    readers = {
        ("producers/gateway/auth.py", 'name="gateway"'): GATEWAY,
        ("producers/registry.py", 'name="devices"'): CLI,
        ("readers/dashboard/viewers.py", 'name="viewers"'): CLI,
    }
    for (path, needle), principal in readers.items():
        assert needle in _source(path), (path, needle)
        name = needle.split('"')[1]
        assert _group_readers(f"classtrace-{name}-0123abcd") == {principal}, name
    assert _group_readers("classtrace-dashboard-0123456789ab") == {DASHBOARD}
    assert _group_readers("classtrace-other") == set()


def test_every_principal_has_its_own_secret():
    names = [p.name for p in acls.PRINCIPALS]
    secrets = [p.secret for p in acls.PRINCIPALS]
    assert len(set(names)) == len(names) and len(set(secrets)) == len(secrets)
    assert set(names) == set(ROLE_PRINCIPALS.values()) | {SDK}
    for p in acls.PRINCIPALS:
        assert re.fullmatch(r"KAFKA_[A-Z]+_PASSWORD", p.secret), p.secret
        assert p.grants, p.name


# -- generated files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [acls.SCRIPT, acls.K8S_MANIFEST], ids=lambda p: p.name)
def test_generated_file_is_up_to_date(path):
    assert path.read_text(encoding="utf-8") == acls.generated()[path], (
        f"{path.relative_to(ROOT)} is stale: run .venv/bin/python infra/kafka/acls.py --write"
    )
    head = "\n".join(path.read_text(encoding="utf-8").splitlines()[:3])
    assert "GENERATED by infra/kafka/acls.py" in head and "infra/kafka/acls.py --write" in head


def test_check_mode_passes():
    assert acls.main(["--check"]) == 0


def _acl_lines() -> set[tuple[str, str, str, str, frozenset[str]]]:
    found = set()
    for line in acls.SCRIPT.read_text(encoding="utf-8").splitlines():
        if line.startswith("acls --add"):
            m = re.fullmatch(
                r"acls --add --allow-principal User:(\S+) ((?:--operation \S+ ?)+)--(topic|group) (\S+)"
                r" --resource-pattern-type (literal|prefixed)",
                line,
            )
            assert m, line
            ops = frozenset(re.findall(r"--operation (\S+)", m.group(2)))
            found.add((m.group(1), m.group(3), m.group(4), m.group(5), ops))
    return found


def _definition() -> set[tuple[str, str, str, str, frozenset[str]]]:
    return {
        (p.name, g.resource.value, g.name, g.pattern.value, frozenset(op.value for op in g.ops))
        for p in acls.PRINCIPALS
        for g in p.grants
    }


def test_script_adds_exactly_the_definition():
    assert _acl_lines() == _definition()
    text = acls.SCRIPT.read_text(encoding="utf-8")
    for p in acls.PRINCIPALS:
        assert (
            f'--entity-name {p.name} --add-config "SCRAM-SHA-512=[iterations=8192,password=${{{p.secret}}}]"'
            in text
        )
        assert f': "${{{p.secret}:?' in text, "a missing password stops the script"
    for spec in ALL_TOPICS:
        assert f"--create --if-not-exists --topic {spec.name} " in text


def _k8s(kind: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [
            d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d and d.get("kind") == kind
        ]
    return docs


def test_kafka_users_are_exactly_the_definition():
    users = {u["metadata"]["name"]: u for u in _k8s("KafkaUser")}
    assert set(users) == {p.name for p in acls.PRINCIPALS}
    found = set()
    for name, user in users.items():
        p = acls.principal(name)
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "classtrace"
        auth = user["spec"]["authentication"]
        assert auth["type"] == "scram-sha-512"
        assert auth["password"]["valueFrom"]["secretKeyRef"] == {
            "name": "classtrace-secrets",
            "key": p.secret,
        }
        assert user["spec"]["authorization"]["type"] == "simple"
        for acl in user["spec"]["authorization"]["acls"]:
            r = acl["resource"]
            found.add((name, r["type"], r["name"], r["patternType"], frozenset(acl["operations"])))
    assert found == _definition()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "kafka-acls.yaml" in kustomization["resources"]


# -- deployments log in as their principal ---------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("role", sorted(ROLE_PRINCIPALS))
def test_compose_role_uses_its_principal(compose, role):
    service = compose["services"][role]
    env = service["environment"]
    p = acls.principal(ROLE_PRINCIPALS[role])
    assert env["CLASSTRACE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["CLASSTRACE_KAFKA_SASL_MECHANISM"] == acls.SCRAM_MECHANISM
    assert env["CLASSTRACE_KAFKA_SASL_USERNAME"] == p.name
    assert re.fullmatch(rf"\$\{{{p.secret}:\?[^}}]*\}}", env["CLASSTRACE_KAFKA_SASL_PASSWORD"])
    assert service["depends_on"]["init-kafka-acls"]["condition"] == "service_completed_successfully"


def test_compose_migrate_holds_no_kafka_credentials(compose):
    assert "CLASSTRACE_KAFKA_SASL_PASSWORD" not in compose["services"]["migrate"]["environment"]


def test_compose_init_service_runs_the_generated_script(compose):
    init = compose["services"]["init-kafka-acls"]
    assert init["image"].startswith("apache/kafka:")
    assert init["entrypoint"] == ["bash", "/opt/classtrace/kafka-acls.sh"]
    assert "./kafka/kafka-acls.sh:/opt/classtrace/kafka-acls.sh:ro" in init["volumes"]
    assert init["networks"] == ["kafka-internal"]
    for p in acls.PRINCIPALS:
        assert re.fullmatch(rf"\$\{{{p.secret}:\?[^}}]*\}}", init["environment"][p.secret])
    assert all(h.endswith("-internal:9094") for h in init["environment"]["KAFKA_BOOTSTRAP"].split(","))


def test_compose_brokers_authenticate_and_authorize(compose):
    assert compose["networks"]["kafka-internal"]["internal"] is True
    brokers = {n: s for n, s in compose["services"].items() if re.fullmatch(r"kafka-\d+", n)}
    assert len(brokers) == 3
    for name, broker in brokers.items():
        env = broker["environment"]
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert env["KAFKA_SUPER_USERS"] == "User:ANONYMOUS"
        protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
        # the only listener outside kafka-internal is SASL; the PLAINTEXT ones (principal ANONYMOUS,
        # the super user) bind to the internal network's address only
        for listener, address in listeners.items():
            if protocols[listener] == "PLAINTEXT":
                assert address.startswith(f"{name}-internal:"), (name, listener)
            else:
                assert protocols[listener] == "SASL_PLAINTEXT"
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == acls.SCRAM_MECHANISM
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
        assert broker["networks"]["kafka-internal"]["aliases"] == [f"{name}-internal"]
    bootstrap = compose["services"]["gateway"]["environment"]["CLASSTRACE_KAFKA_BOOTSTRAP"]
    assert all(h.endswith(":9092") and "internal" not in h for h in bootstrap.split(","))


def test_env_example_lists_every_password():
    text = (INFRA / ".env.example").read_text(encoding="utf-8")
    for p in acls.PRINCIPALS:
        assert re.search(rf"^{p.secret}=$", text, re.M), p.secret


def _k8s_role_env(role: str) -> dict[str, Any]:
    for doc in _k8s("Deployment"):
        template = doc["spec"]["template"]
        if template["metadata"]["labels"].get("app.kubernetes.io/component") == role:
            (container,) = template["spec"]["containers"]
            return {item["name"]: item for item in container.get("env", [])}
    raise AssertionError(f"no Deployment for {role}")


@pytest.mark.parametrize("role", sorted(ROLE_PRINCIPALS))
def test_k8s_role_uses_its_principal(role):
    env = _k8s_role_env(role)
    p = acls.principal(ROLE_PRINCIPALS[role])
    assert env["CLASSTRACE_KAFKA_SASL_USERNAME"]["value"] == p.name
    ref = env["CLASSTRACE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "classtrace-secrets", "key": p.secret}


def test_k8s_secret_configmap_and_kafka_listener():
    (secret,) = [s for s in _k8s("Secret") if s["metadata"]["name"] == "classtrace-secrets"]
    assert {p.secret for p in acls.PRINCIPALS} <= set(secret["stringData"])
    (configmap,) = _k8s("ConfigMap")
    assert configmap["data"]["CLASSTRACE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert configmap["data"]["CLASSTRACE_KAFKA_SASL_MECHANISM"] == acls.SCRAM_MECHANISM
    (kafka,) = _k8s("Kafka")
    spec = kafka["spec"]["kafka"]
    assert spec["authorization"]["type"] == "simple"
    assert spec["config"]["allow.everyone.if.no.acl.found"] is False
    for listener in spec["listeners"]:
        assert listener["authentication"]["type"] == "scram-sha-512", listener["name"]
    migrate = next(j for j in _k8s("Job") if j["metadata"]["name"] == "classtrace-migrate")
    env = {e["name"] for e in migrate["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    assert "CLASSTRACE_KAFKA_SASL_PASSWORD" not in env, "migrate does not use Kafka"
