"""Static checks of the production deployment in infra/ (no Docker or cluster needed).

The files are parsed, not run: every role is deployed in compose and Kubernetes with the settings
of docs/DESIGN.md §3, no secret is written as a literal, images are pinned, the KafkaTopic CRs match
classtrace/topics.py, probes hit /healthz, the kustomization is complete, the image is non-root.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from classtrace.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "compose.yaml"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
OWN_YAML = sorted([COMPOSE, *K8S.glob("*.yaml")])

ROLES = ("gateway", "worker", "sink", "dashboard", "migrate")
# docs/DESIGN.md §3 settings every role gets; ClickHouse only where a role talks to it (least privilege).
COMMON_ENV = {
    "CLASSTRACE_KAFKA_BOOTSTRAP",
    "CLASSTRACE_PARTITIONS",
    "CLASSTRACE_DATA_DIR",
}
# Key material no server role holds (docs/KEYS.md): events arrive pseudonymised; the region secret
# stays offline with device provisioning, and the single pseudonym key is retired.
KEY_MATERIAL = ("CLASSTRACE_PSEUDONYM_KEY", "CLASSTRACE_REGION_SECRET")
# The ClickHouse user of each role (infra/clickhouse/roles.py; test_infra_clickhouse_roles.py).
CLICKHOUSE_ROLES = {
    "sink": "classtrace_sink",
    "dashboard": "classtrace_analyst",
    "migrate": "classtrace_migrator",
}
HTTP_ROLES = {"gateway": 8080, "dashboard": 8081}
SECRET_WORDS = ("PASSWORD", "PSEUDONYM_KEY", "SECRET", "TOKEN")
COMPOSE_REQUIRED = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")
URL_PASSWORD = re.compile(r"^https?://([^:/@]+):([^@]*)@")
PLACEHOLDER = "REPLACE_ME"


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _k8s_docs() -> list[dict[str, Any]]:
    manifests = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    return [doc for path in manifests for doc in _load_all(path)]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _k8s_docs() if doc.get("kind") == kind]


def _by_name(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in _kind(kind)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _k8s_workloads() -> dict[str, dict[str, Any]]:
    """role -> pod spec, from the Deployments and the migrate Job."""
    pods: dict[str, dict[str, Any]] = {}
    for doc in _kind("Deployment") + _kind("Job"):
        role = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        pods[role] = doc["spec"]["template"]["spec"]
    return pods


def _k8s_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {"value": ...} or {"valueFrom": ...}; envFrom ConfigMaps resolved."""
    configmaps = {name: doc.get("data", {}) for name, doc in _by_name("ConfigMap").items()}
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"only ConfigMaps via envFrom: {source}"
        for key, value in configmaps[source["configMapRef"]["name"]].items():
            env[key] = {"value": str(value)}
    for item in container.get("env", []):
        env[item["name"]] = {k: v for k, v in item.items() if k != "name"}
    return env


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", OWN_YAML, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_yaml_parses(path):
    docs = _load_all(path)
    assert docs, f"{path} is empty"
    if path.parent == K8S and path.name != "kustomization.yaml":
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path}: {doc.get('kind')}"
            assert doc["metadata"].get("name"), f"{path}: a {doc['kind']} without a name"
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "classtrace", f"{path}: {doc['kind']}"


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "duplicates in kustomization resources"
    present = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == present


def test_k8s_resource_names_are_unique():
    seen = [(d["kind"], d["metadata"]["name"]) for d in _k8s_docs()]
    assert len(seen) == len(set(seen))


# -- roles and their configuration ---------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_compose_deploys_role_with_design_env(compose, role):
    service = compose["services"][role]
    assert service["command"] == [role]
    env = _compose_env(service)
    assert set(env) >= COMMON_ENV, COMMON_ENV - set(env)
    assert env["CLASSTRACE_KAFKA_BOOTSTRAP"].split(",")[0].startswith("kafka-")
    assert env["CLASSTRACE_KAFKA_SECURITY_PROTOCOL"], "SASL passthrough example is wired"
    if role in CLICKHOUSE_ROLES:
        url = env["CLASSTRACE_CLICKHOUSE_URL"]
        assert url.startswith("http://") and url.endswith("@clickhouse:8123/classtrace"), url
        if CLICKHOUSE_ROLES[role]:
            assert URL_PASSWORD.match(url).group(1) == CLICKHOUSE_ROLES[role]
    else:
        assert "CLASSTRACE_CLICKHOUSE_URL" not in env, f"{role} has no business in ClickHouse"
    if role in HTTP_ROLES:
        assert env["CLASSTRACE_GATEWAY_PORT"] == str(HTTP_ROLES[role])
    assert service.get("restart"), f"{role} has no restart policy"
    assert service["deploy"]["resources"]["limits"], f"{role} has no resource limits"
    assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"]


def test_compose_scalable_roles_publish_no_fixed_host_port(compose):
    for role in ("gateway", "worker", "sink"):
        assert "ports" not in compose["services"][role], f"{role} would not scale with a host port"
    assert compose["services"]["migrate"]["restart"].startswith("on-failure")
    assert compose["services"]["sink"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_compose_kafka_is_kraft(compose):
    brokers = [s for name, s in compose["services"].items() if name.startswith("kafka-")]
    assert brokers
    for service in brokers:
        assert service["image"].startswith("apache/kafka:")
        env = _compose_env(service)
        assert "controller" in env["KAFKA_PROCESS_ROLES"]
        assert "KAFKA_ZOOKEEPER_CONNECT" not in env
        assert service["volumes"], "broker data must be on a volume"
    assert {"clickhouse", "keeper"} <= set(compose["services"])


def _walk_strings(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_strings(value, f"{path}[{i}]")
    elif node is not None:
        yield path, str(node)


def test_compose_has_no_literal_secrets(compose):
    for path, value in _walk_strings(compose["services"]):
        name = path.rsplit(".", 1)[-1]
        if any(word in name for word in SECRET_WORDS):
            assert COMPOSE_REQUIRED.match(value), f"{path} must be a ${{VAR:?}} reference, got {value!r}"
        match = URL_PASSWORD.match(value)
        if match:
            assert COMPOSE_REQUIRED.match(match.group(2)), f"{path}: literal password in a URL"


@pytest.mark.parametrize("role", ROLES)
def test_k8s_deploys_role_with_design_env(role):
    pods = _k8s_workloads()
    assert role in pods, f"no Deployment/Job for {role}"
    (container,) = pods[role]["containers"]
    assert container["args"] == [role]
    env = _k8s_env(container)
    assert set(env) >= COMMON_ENV, COMMON_ENV - set(env)
    assert "CLASSTRACE_KAFKA_SECURITY_PROTOCOL" in env
    if role in CLICKHOUSE_ROLES:
        url = env["CLASSTRACE_CLICKHOUSE_URL"]["value"]
        match = URL_PASSWORD.match(url)
        assert match and match.group(2).startswith("$(") and match.group(2).endswith(")"), url
        var = match.group(2)[2:-1]
        names = [item["name"] for item in container["env"]]
        assert names.index(var) < names.index("CLASSTRACE_CLICKHOUSE_URL"), "$(VAR) must come first"
        assert "secretKeyRef" in env[var]["valueFrom"]
        if CLICKHOUSE_ROLES[role]:
            assert match.group(1) == CLICKHOUSE_ROLES[role]
    else:
        assert "CLASSTRACE_CLICKHOUSE_URL" not in env
    if role in HTTP_ROLES:
        assert env["CLASSTRACE_GATEWAY_PORT"]["value"] == str(HTTP_ROLES[role])
        assert container["ports"][0]["containerPort"] == HTTP_ROLES[role]
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_k8s_has_no_literal_secrets():
    for doc in _k8s_docs():
        if doc["kind"] == "Secret":
            values = {**doc.get("stringData", {}), **doc.get("data", {})}
            assert values and all(v == PLACEHOLDER for v in values.values()), values
            continue
        for path, value in _walk_strings(doc):
            name = path.rsplit(".", 1)[-1]
            assert not URL_PASSWORD.match(value) or URL_PASSWORD.match(value).group(2).startswith("$("), path
            if any(word in name for word in SECRET_WORDS) and "k8s_secret_password" not in name:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} {path}: literal secret")
    for pod in _k8s_workloads().values():
        for container in _containers(pod):
            for item in container.get("env", []):
                if any(word in item["name"] for word in SECRET_WORDS):
                    assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
    assert not any(
        any(word in key for word in SECRET_WORDS) for doc in _kind("ConfigMap") for key in doc["data"]
    ), "secrets belong in the Secret, not the ConfigMap"


def _key_material(names: Any) -> set[str]:
    return {str(name) for name in names if any(key in str(name) for key in KEY_MATERIAL)}


def test_compose_gives_no_service_key_material(compose):
    for name, service in compose["services"].items():
        env = _compose_env(service)
        assert not _key_material(env), f"compose service {name} holds {_key_material(env)}"
        assert not _key_material(env.values()), f"compose service {name} passes key material on"
    example = (INFRA / ".env.example").read_text(encoding="utf-8").splitlines()
    assert not _key_material(line.split("=", 1)[0] for line in example if "=" in line and line[0] != "#")


def test_k8s_gives_no_workload_key_material():
    pods = _k8s_workloads()
    assert set(ROLES) <= set(pods)
    for role, pod in pods.items():
        for container in _containers(pod):
            env = _k8s_env(container)
            assert not _key_material(env), f"{role}/{container['name']} holds {_key_material(env)}"
            refs = [item["valueFrom"]["secretKeyRef"]["key"] for item in env.values() if "valueFrom" in item
                    and "secretKeyRef" in item["valueFrom"]]  # fmt: skip
            assert not _key_material(refs), f"{role}/{container['name']} reads {_key_material(refs)}"
    for secret in _kind("Secret"):
        keys = {**secret.get("stringData", {}), **secret.get("data", {})}
        assert not _key_material(keys), f"Secret/{secret['metadata']['name']} holds {_key_material(keys)}"


def test_compose_and_k8s_agree_on_partitions(compose):
    (configmap,) = _kind("ConfigMap")
    k8s_partitions = int(configmap["data"]["CLASSTRACE_PARTITIONS"])
    stream_topics = [t for t in _kind("KafkaTopic") if t["spec"]["partitions"] != 1]
    assert stream_topics and all(t["spec"]["partitions"] == k8s_partitions for t in stream_topics)
    assert _compose_env(compose["services"]["worker"])["CLASSTRACE_PARTITIONS"]


# -- images, probes, pod security ------------------------------------------------------------------


def _images() -> list[tuple[str, str]]:
    images: list[tuple[str, str]] = []
    compose_doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, service in compose_doc["services"].items():
        images.append((f"compose:{name}", service["image"]))
    for doc in _k8s_docs():
        for path, value in _walk_strings(doc):
            if path.endswith(".image"):
                images.append((f"{doc['kind']}/{doc['metadata']['name']}{path}", value))
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("ARG PYTHON_IMAGE="):
            images.append(("Dockerfile", line.split("=", 1)[1]))
    return images


def test_every_image_is_pinned_to_a_tag():
    images = _images()
    assert len(images) >= 8
    for where, written in images:
        image = re.sub(r"^\$\{[A-Z_]+:-(.+)\}$", r"\1", written)  # compose default
        ref = image.rsplit("/", 1)[-1]
        assert ":" in ref or "@sha256:" in image, f"{where}: {image} has no tag"
        tag = ref.split(":", 1)[1].split("@")[0] if ":" in ref else ""
        assert tag and tag != "latest", f"{where}: {image} is not pinned"


def test_kustomize_pins_the_classtrace_image():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = [i for i in kustomization["images"] if i["name"] == "classtrace"]
    assert image["newTag"] and image["newTag"] != "latest"


def test_http_probes_point_at_healthz(compose):
    probes = 0
    for pod in _k8s_workloads().values():
        for container in _containers(pod):
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if kind in container:
                    assert container[kind]["httpGet"]["path"] == "/healthz"
                    probes += 1
    gateway = _k8s_workloads()["gateway"]["containers"][0]
    assert {"readinessProbe", "livenessProbe"} <= set(gateway)
    for role, port in HTTP_ROLES.items():
        test = " ".join(compose["services"][role]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in test
    assert probes >= 4


def test_gateway_autoscales():
    (hpa,) = _kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    assert hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("role", ROLES)
def test_pods_are_locked_down(role):
    pod = _k8s_workloads()[role]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    for container in _containers(pod):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/classtrace"} <= mounts, "writable scratch for a read-only root"


def test_worker_state_is_scratch_recovered_from_changelogs():
    pod = _k8s_workloads()["worker"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/var/lib/classtrace"]
    assert "emptyDir" in volumes[mount["name"]]
    assert "changelog" in (K8S / "worker.yaml").read_text(encoding="utf-8")


def test_dockerfile_runs_as_non_root():
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users, "no USER in the Dockerfile"
    final = users[-1].split(":")[0]
    assert final not in {"0", "root"}
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"pip install \.", text)
    assert 'ENTRYPOINT ["classtrace"]' in text


def test_dockerignore_keeps_local_state_out():
    lines = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".classtrace", "artifacts", ".git", "__pycache__", ".pytest_cache"} <= lines
    assert not {"README.md", "pyproject.toml", "classtrace"} & lines, "pip install . needs these"


# -- Kafka and ClickHouse ----------------------------------------------------------------------------


def test_kafka_is_kraft_with_node_pools():
    (kafka,) = _kind("Kafka")
    annotations = kafka["metadata"]["annotations"]
    assert annotations["strimzi.io/kraft"] == "enabled"
    assert annotations["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    roles = {r for pool in _kind("KafkaNodePool") for r in pool["spec"]["roles"]}
    assert roles == {"broker", "controller"}
    for pool in _kind("KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    (configmap,) = _kind("ConfigMap")
    bootstrap = configmap["data"]["CLASSTRACE_KAFKA_BOOTSTRAP"]
    assert bootstrap == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda s: s.name)
def test_topic_is_a_kafka_topic_cr(spec):
    topics = {t["spec"]["topicName"]: t for t in _kind("KafkaTopic")}
    assert spec.name in topics, f"no KafkaTopic for {spec.name}"
    cr = topics[spec.name]["spec"]
    config = {k: str(v) for k, v in cr["config"].items()}
    assert config.get("cleanup.policy", "delete") == spec.config.get("cleanup.policy", "delete")
    for key, value in spec.config.items():
        assert config.get(key) == value, f"{spec.name}: {key}={config.get(key)} != {value}"
    if spec.single_partition:
        assert cr["partitions"] == 1
    assert cr["replicas"] >= 3 and int(config["min.insync.replicas"]) >= 2


def test_no_kafka_topic_outside_the_contract():
    names = {t["spec"]["topicName"] for t in _kind("KafkaTopic")}
    assert names == {spec.name for spec in ALL_TOPICS}


def test_clickhouse_cluster_and_users():
    (chi,) = _kind("ClickHouseInstallation")
    (chk,) = _kind("ClickHouseKeeperInstallation")
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    (keeper_node,) = chi["spec"]["configuration"]["zookeeper"]["nodes"]
    assert keeper_node["host"] == f"keeper-{chk['metadata']['name']}"
    users = chi["spec"]["configuration"]["users"]
    secret_keys = set(_by_name("Secret")["classtrace-secrets"]["stringData"])
    for user in CLICKHOUSE_ROLES.values():
        ref = users[f"{user}/k8s_secret_password"]
        assert ref.split("/")[0] == "classtrace-secrets" and ref.split("/")[1] in secret_keys
        assert not any(k.startswith(f"{user}/password") for k in users), "plain password in the CHI"
    assert users["classtrace_analyst/grants/query"] == ["GRANT SELECT ON classtrace.*"]
    assert chi["spec"]["configuration"]["profiles"]["classtrace_analyst/readonly"] == 1


# -- network exposure ---------------------------------------------------------------------------


def test_only_gateway_and_dashboard_are_exposed():
    backends = {
        path["backend"]["service"]["name"]
        for ingress in _kind("Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"gateway", "dashboard"}
    services = _kind("Service")
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services)
    dashboard = _by_name("Ingress")["dashboard"]
    assert dashboard["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]


def test_network_policies_default_deny_and_fence_clickhouse():
    policies = _by_name("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    clickhouse = policies["clickhouse-clients"]["spec"]
    client_rule = clickhouse["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    allowed = {
        role
        for role, pod in _k8s_workloads().items()
        if all(pod_labels.get(k) == v for pod_labels in [_pod_labels(role)] for k, v in client_rule.items())
    }
    assert allowed == set(CLICKHOUSE_ROLES)


def _pod_labels(role: str) -> dict[str, str]:
    for doc in _kind("Deployment") + _kind("Job"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] == role:
            return labels
    raise AssertionError(role)


def test_dockerfile_installs_the_pure_python_wheel_without_a_compiler():
    """classtrace has no native code, so the image installs no compiler and the build checks only
    that the installed CLI starts."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    build, _runtime = text.split("# --- runtime", 1)
    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|libc6-dev|python3-dev)\b", text)
    assert "apt-get install" not in text
    # the build fails if the installed distribution does not run
    assert build.index("pip install .") < build.index("classtrace --help")
    assert not re.search(r"import [\w.]*(_wire|_fold)", text), "no compiled module is left to import"
    # and that holds because the distribution is pure Python: nothing for pip to compile
    assert not (ROOT / "setup.py").exists()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ext-modules" not in pyproject.get("tool", {}).get("setuptools", {})
    packages = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name != "tests"]
    native = [
        path.relative_to(ROOT)
        for package in packages
        for pattern in ("*.c", "*.h", "*.cpp", "*.pyx")
        for path in package.rglob(pattern)
    ]
    assert not native, f"native sources in the distribution: {native}"


# -- schemas ------------------------------------------------------------------------------------

# Custom resources: their operators' CRD schemas are not bundled anywhere this machine reaches
# (infra/README.md, "What remains unproven").
CRD_KINDS = {
    "ClickHouseInstallation",
    "ClickHouseKeeperInstallation",
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
    "KafkaUser",
    "Kustomization",
}


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_k8s_manifests_match_the_kubernetes_schemas(path):
    version = kubernetes_validate.utils.latest_version()
    for doc in _load_all(path):
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name} {doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")


def _compose_schema() -> dict[str, Any]:
    """The Compose Specification schema as check-jsonschema vendors it (read, not imported: its CLI
    needs a newer click than faust allows). Source and licence: that package's vendor/ folder."""
    from importlib import metadata

    files = metadata.files("check-jsonschema") or []
    (schema,) = [f for f in files if str(f).endswith("builtin_schemas/vendor/compose-spec.json")]
    return json.loads(schema.read_text(encoding="utf-8"))


def test_compose_matches_the_compose_spec_schema(compose):
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_the_schema_checks_catch_a_wrong_field(compose):
    """The two checks above can fail: a misspelt key is refused by each."""
    schema = _compose_schema()
    broken = {
        **compose,
        "services": {**compose["services"], "edge": {**compose["services"]["edge"], "port": [1]}},
    }
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))
    (deployment, *_) = _kind("Deployment")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.utils.latest_version(), strict=True)
