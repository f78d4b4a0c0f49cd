"""The one definition of classtrace's Kafka principals and what each may do (docs/DESIGN.md §9).

Every SCRAM user of the production cluster and every ACL it holds is written once, in
:data:`PRINCIPALS`. Two files are generated from it and checked in:

* ``infra/kafka/kafka-acls.sh`` — run by the ``init-kafka-acls`` service of ``infra/compose.yaml``:
  creates the topics of ``classtrace/topics.py``, the SCRAM-SHA-512 users (passwords from the
  environment) and the ACLs, with ``kafka-topics.sh``, ``kafka-configs.sh`` and ``kafka-acls.sh``;
* ``infra/k8s/kafka-acls.yaml`` — the same users and ACLs as Strimzi ``KafkaUser`` resources
  (Strimzi's User Operator owns users and ACLs on Kubernetes and removes ACLs it does not manage,
  so a Job running the script there would be undone).

Regenerate after editing the table::

    .venv/bin/python infra/kafka/acls.py --write     # rewrite both files
    .venv/bin/python infra/kafka/acls.py --check     # exit 1 when one is stale (CI, tests)

Kafka semantics used by :func:`allows`: an ACL on a LITERAL name matches that name, one on a
PREFIXED name every name that starts with it; READ, WRITE, DELETE and ALTER imply DESCRIBE.
Super users (``super.users``) bypass ACLs and are not listed here; see infra/README.md.
"""

from __future__ import annotations

import argparse
import enum
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))
from generated_files import sync  # noqa: E402  (infra/ is scripts, not a package)

SCRIPT = ROOT / "infra" / "kafka" / "kafka-acls.sh"
K8S_MANIFEST = ROOT / "infra" / "k8s" / "kafka-acls.yaml"

try:
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
except ImportError:  # run as a script from a checkout without the package installed
    sys.path.insert(0, str(ROOT))
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

__all__ = [
    "PRINCIPALS",
    "SCRAM_MECHANISM",
    "WORKER_APP_ID",
    "Grant",
    "Op",
    "Pattern",
    "Principal",
    "Resource",
    "allows",
    "principal",
    "render_k8s",
    "render_script",
]

SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
WORKER_APP_ID = "classtrace-worker"
"""Faust app id of ``classtrace worker`` (stream_processors.app.WorkerConfig.app_id): its consumer
group, and the prefix of its internal topics ``<id>-<table>-changelog`` and
``<id>-__assignor-__leader``."""
SINK_GROUP = "classtrace-sink"
"""Consumer group of ``classtrace sink`` (``--group`` default)."""


class Op(enum.Enum):
    """Kafka ACL operations (the names kafka-acls.sh and Strimzi take)."""

    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DELETE = "Delete"
    ALTER = "Alter"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    ALTER_CONFIGS = "AlterConfigs"


_IMPLIES_DESCRIBE = frozenset({Op.READ, Op.WRITE, Op.DELETE, Op.ALTER})


class Resource(enum.Enum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(enum.Enum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


@dataclass(frozen=True)
class Grant:
    """ALLOW ``ops`` on the ``resource`` named ``name`` (``pattern``); ``why`` says who needs it."""

    resource: Resource
    name: str
    ops: tuple[Op, ...]
    why: str
    pattern: Pattern = Pattern.LITERAL

    def matches(self, resource: Resource, name: str) -> bool:
        if resource is not self.resource:
            return False
        if self.pattern is Pattern.LITERAL:
            return name == self.name
        return name.startswith(self.name)


@dataclass(frozen=True)
class Principal:
    """A SCRAM user (``User:<name>``) and its ACLs."""

    name: str
    """SCRAM user name = CLASSTRACE_KAFKA_SASL_USERNAME of the role."""
    role: str
    """Who uses it: the compose service / k8s workload, or ``sdk`` (devices, outside the stack)."""
    secret: str
    """Environment variable (compose ``.env``) and Secret key (k8s) holding its password."""
    grants: tuple[Grant, ...]
    about: str


def _topic(name: str, *ops: Op, why: str, pattern: Pattern = Pattern.LITERAL) -> Grant:
    return Grant(Resource.TOPIC, name, ops, why, pattern)


def _group(name: str, why: str, pattern: Pattern = Pattern.LITERAL) -> Grant:
    return Grant(Resource.GROUP, name, (Op.READ,), why, pattern)


PRINCIPALS: tuple[Principal, ...] = (
    Principal(
        "classtrace-gateway",
        "gateway",
        "KAFKA_GATEWAY_PASSWORD",
        (
            _topic(EVENTS, Op.WRITE, why="validated events: the way onto the trusted topic (DESIGN.md §9)"),
            _topic(DEADLETTER, Op.WRITE, why="rejected events and records"),
            _topic(DEVICES, Op.READ, why="restores and follows device tokens (auth.py)"),
            _topic(
                ACCESS, Op.WRITE, why="access records of the dashboard routes it serves (--with-dashboard)"
            ),
            _group(
                "classtrace-gateway-",
                "CompactedTopicReader(name='gateway'): a random group id, assign() only, never joined",
                Pattern.PREFIXED,
            ),
        ),
        "ingest gateway: validates, then writes events",
    ),
    Principal(
        "classtrace-sdk",
        "sdk",
        "KAFKA_SDK_PASSWORD",
        (_topic(EVENTS, Op.WRITE, why="EdgeProducer KafkaTransport: events validated before the spool"),),
        "edge SDK's direct Kafka transport (devices; needs a listener they can reach)",
    ),
    Principal(
        "classtrace-worker",
        "worker",
        "KAFKA_WORKER_PASSWORD",
        (
            _topic(EVENTS, Op.READ, why="the Faust agent's source"),
            _topic(METRICS, Op.WRITE, why="metric batches"),
            _topic(ALERTS, Op.WRITE, why="alerts it raises and clears"),
            _topic(DEADLETTER, Op.WRITE, why="records it cannot decode"),
            _topic(
                f"{WORKER_APP_ID}-",
                Op.READ,
                Op.WRITE,
                Op.CREATE,
                why="Faust's own topics: <app id>-<table>-changelog, <app id>-__assignor-__leader",
                pattern=Pattern.PREFIXED,
            ),
            _group(WORKER_APP_ID, "the Faust app's consumer group"),
            _topic(ERASURES, Op.READ, why="the erasure ledger: anonymises lesson state (docs/ERASURE.md)"),
            _group(
                f"classtrace-{WORKER_APP_ID}-erasures-",
                "ErasureFollower: a random group id, assign() only, never joined",
                Pattern.PREFIXED,
            ),
        ),
        "Faust worker",
    ),
    Principal(
        "classtrace-sink",
        "sink",
        "KAFKA_SINK_PASSWORD",
        (
            _topic(EVENTS, Op.READ, why="rows of events"),
            _topic(METRICS, Op.READ, why="rows of metrics"),
            _topic(DEADLETTER, Op.READ, why="rows of dead_letters"),
            _topic(ACCESS, Op.READ, why="rows of access_log"),
            _topic(ALERTS, Op.READ, why="rows of alerts"),
            _group(SINK_GROUP, "the sink's consumer group (--group)"),
            _topic(
                ERASURES, Op.READ, why="the erasure ledger: the sink deletes and audits (docs/ERASURE.md)"
            ),
            _group(
                f"classtrace-{SINK_GROUP}-erasures-",
                "ErasureFollower: a random group id, assign() only, never joined",
                Pattern.PREFIXED,
            ),
        ),
        "ClickHouse sink (its own dead letters go to ClickHouse, not to Kafka)",
    ),
    Principal(
        "classtrace-dashboard",
        "dashboard",
        "KAFKA_DASHBOARD_PASSWORD",
        (
            _topic(METRICS, Op.READ, why="live cards"),
            _topic(ALERTS, Op.READ, why="alert history of the detail view"),
            _topic(VIEWERS, Op.READ, why="viewer tokens"),
            _topic(ACCESS, Op.WRITE, why="access records: who opened which snapshot, detail, stream"),
            _group(
                "classtrace-dashboard-",
                "TopicTail: a random group id, assign() only, never joined",
                Pattern.PREFIXED,
            ),
        ),
        "live dashboard",
    ),
    Principal(
        "classtrace-cli",
        "cli",
        "KAFKA_CLI_PASSWORD",
        (
            _topic(DEVICES, Op.READ, Op.WRITE, Op.CREATE, why="classtrace devices add/list/revoke"),
            _topic(VIEWERS, Op.READ, Op.WRITE, Op.CREATE, why="classtrace viewers add/list/revoke"),
            _topic(ACCESS, Op.WRITE, why="access records of classtrace query and classtrace report"),
            _topic(ERASURES, Op.WRITE, Op.CREATE, why="classtrace erase appends to the erasure ledger"),
            _group(
                "classtrace-devices-",
                "read_compacted(name='devices'): random group id, never joined",
                Pattern.PREFIXED,
            ),
            _group(
                "classtrace-viewers-",
                "read_compacted(name='viewers'): random group id, never joined",
                Pattern.PREFIXED,
            ),
        ),
        "operator's CLI: the only writer of the device and viewer registries",
    ),
)


def principal(name_or_role: str) -> Principal:
    """The principal with this user name or role."""
    for p in PRINCIPALS:
        if name_or_role in (p.name, p.role):
            return p
    raise KeyError(name_or_role)


def allows(user: str, resource: Resource, name: str, op: Op) -> bool:
    """Would the ACLs of :data:`PRINCIPALS` let ``User:<user>`` do ``op`` on ``name``?"""
    found = [p for p in PRINCIPALS if p.name == user]
    if not found:
        return False
    for grant in found[0].grants:
        if grant.matches(resource, name):
            if op in grant.ops or (op is Op.DESCRIBE and _IMPLIES_DESCRIBE & set(grant.ops)):
                return True
            if op is Op.DESCRIBE_CONFIGS and Op.ALTER_CONFIGS in grant.ops:
                return True
    return False


# -- generators -----------------------------------------------------------------------------------

_HEADER = "GENERATED by infra/kafka/acls.py from its PRINCIPALS table: do not edit by hand.\n" + (
    "Regenerate with: .venv/bin/python infra/kafka/acls.py --write"
)


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


def render_script() -> str:
    """The shell script of the compose init service (topics, SCRAM users, ACLs)."""
    out = [
        "#!/usr/bin/env bash",
        _comment(_HEADER),
        "#",
        "# Run by the `init-kafka-acls` service of infra/compose.yaml on the brokers' internal listener",
        "# (KAFKA_BOOTSTRAP, PLAINTEXT, reachable only on the kafka-internal network, whose principal",
        "# User:ANONYMOUS is the super user). Idempotent: topics are created if missing, SCRAM",
        "# credentials are (re)set to the passwords in the environment, ACLs are added. It only adds:",
        "# an ACL dropped from the table must be removed by hand (infra/README.md, Kafka ACLs).",
        "set -euo pipefail",
        "",
        ': "${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP to the internal listener of the brokers}"',
        ': "${CLASSTRACE_PARTITIONS:=12}"',
        ': "${KAFKA_REPLICATION_FACTOR:=3}"',
        'BIN="${KAFKA_BIN:-/opt/kafka/bin}"',
    ]
    for p in PRINCIPALS:
        out.append(f': "${{{p.secret}:?set {p.secret} (SCRAM password of {p.name})}}"')
    out += [
        "",
        'topics() { "$BIN/kafka-topics.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }',
        'configs() { "$BIN/kafka-configs.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }',
        'acls() { "$BIN/kafka-acls.sh" --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }',
        "",
        "# -- topics of classtrace/topics.py ---------------------------------------------------------",
    ]
    for spec in ALL_TOPICS:
        partitions = "1" if spec.single_partition else '"$CLASSTRACE_PARTITIONS"'
        configs = "".join(f" --config {k}={v}" for k, v in sorted(spec.config.items()))
        out.append(
            f"topics --create --if-not-exists --topic {spec.name} --partitions {partitions}"
            f' --replication-factor "$KAFKA_REPLICATION_FACTOR"{configs}'
        )
    out += ["", f"# -- SCRAM users ({SCRAM_MECHANISM}) -----------------------------------------------------"]
    for p in PRINCIPALS:
        out.append(
            f"configs --alter --entity-type users --entity-name {p.name} --add-config"
            f' "{SCRAM_MECHANISM}=[iterations={SCRAM_ITERATIONS},password=${{{p.secret}}}]"'
        )
    out += [
        "",
        "# -- ACLs (allow only; nothing is allowed without one) -------------------------------------",
    ]
    for p in PRINCIPALS:
        out.append(f"# {p.name}: {p.about}")
        for g in p.grants:
            ops = " ".join(f"--operation {op.value}" for op in g.ops)
            out.append(f"#   {g.why}")
            out.append(
                f"acls --add --allow-principal User:{p.name} {ops} --{g.resource.value} {g.name}"
                f" --resource-pattern-type {g.pattern.value}"
            )
    out += ["", 'echo "kafka-acls: topics, users and ACLs are in place"', ""]
    return "\n".join(out)


def render_k8s() -> str:
    """Strimzi KafkaUser resources: SCRAM users with their passwords from classtrace-secrets."""
    docs = [
        _comment(_HEADER)
        + "\n#\n"
        + _comment(
            "Strimzi's User Operator creates each SCRAM-SHA-512 user with the password of its key in\n"
            "the Secret classtrace-secrets and keeps exactly these ACLs (it removes ACLs of users it\n"
            "does not manage). The roles read the same key as CLASSTRACE_KAFKA_SASL_PASSWORD."
        )
    ]
    for p in PRINCIPALS:
        lines = [
            "apiVersion: kafka.strimzi.io/v1beta2",
            "kind: KafkaUser",
            "metadata:",
            f"  name: {p.name}",
            "  namespace: classtrace",
            "  labels:",
            "    strimzi.io/cluster: classtrace",
            "    app.kubernetes.io/part-of: classtrace",
            f"    app.kubernetes.io/component: {p.role}",
            "spec:",
            "  authentication:",
            "    type: scram-sha-512",
            "    password:",
            "      valueFrom:",
            f"        secretKeyRef: {{name: classtrace-secrets, key: {p.secret}}}",
            "  authorization:",
            "    type: simple",
            "    acls:",
        ]
        for g in p.grants:
            lines += [
                f"      # {g.why}",
                f"      - resource: {{type: {g.resource.value}, name: {g.name},"
                f" patternType: {g.pattern.value}}}",
                f"        operations: [{', '.join(op.value for op in g.ops)}]",
                '        host: "*"',
            ]
        docs.append(f"# {p.about}\n" + "\n".join(lines))
    return docs[0] + "\n" + "\n---\n".join(docs[1:]) + "\n"


def generated() -> dict[Path, str]:
    """Every generated file and its content now."""
    return {SCRIPT: render_script(), K8S_MANIFEST: render_k8s()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated files")
    action.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    return sync(generated(), write=args.write, root=ROOT, script="infra/kafka/acls.py")


if __name__ == "__main__":
    raise SystemExit(main())
