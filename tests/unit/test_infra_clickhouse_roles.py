"""ClickHouse users, profiles and grants of the production infra: one definition, three deploys.

infra/clickhouse/roles.py is the definition. These tests read the users back out of what each
deploy actually runs — grants.sql (compose, self-managed), users.d/classtrace.xml (profiles),
k8s/clickhouse.yaml (the operator) and the role URLs of compose.yaml and the k8s workloads — and
compare them with each other and with roles.py. No ClickHouse server runs here (infra/README.md,
"What remains unproven").
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CH = INFRA / "clickhouse"
K8S = INFRA / "k8s"

Grants = dict[str, set[tuple[str, str]]]
"""user -> {(privilege, target)}"""


def _load_roles() -> Any:
    spec = importlib.util.spec_from_file_location("classtrace_infra_clickhouse_roles", CH / "roles.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


roles = _load_roles()


# -- readers of each deploy's files ---------------------------------------------------------------


def _split(privileges: str) -> list[str]:
    return [p.strip() for p in privileges.split(",")]


def sql_users(text: str) -> dict[str, str | None]:
    """user -> settings profile, from the CREATE USER statements of a SQL file."""
    users: dict[str, str | None] = {}
    for m in re.finditer(r"^CREATE USER IF NOT EXISTS (\w+)([^;]*);", text, re.M):
        profile = re.search(r"SETTINGS PROFILE '(\w+)'", m.group(2))
        users[m.group(1)] = profile.group(1) if profile else None
    return users


def sql_grants(text: str) -> Grants:
    grants: Grants = {}
    for m in re.finditer(r"^GRANT (.+) ON (\S+) TO (\w+);", text, re.M):
        grants.setdefault(m.group(3), set()).update((p, m.group(2)) for p in _split(m.group(1)))
    return grants


def xml_profiles(text: str) -> dict[str, dict[str, str]]:
    root = ET.fromstring(text)
    return {p.tag: {s.tag: (s.text or "") for s in p} for p in root.find("profiles") or []}


def chi_configuration(text: str) -> dict[str, Any]:
    (chi,) = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "ClickHouseInstallation"]
    configuration: dict[str, Any] = chi["spec"]["configuration"]
    return configuration


def chi_users(configuration: dict[str, Any]) -> dict[str, str]:
    """user -> settings profile of the operator's users."""
    return {k.split("/")[0]: v for k, v in configuration["users"].items() if k.endswith("/profile")}


def chi_grants(configuration: dict[str, Any]) -> Grants:
    grants: Grants = {}
    for key, queries in configuration["users"].items():
        if key.endswith("/grants/query"):
            for q in queries:
                m = re.fullmatch(r"GRANT (.+) ON (\S+)", q)
                assert m, q
                grants.setdefault(key.split("/")[0], set()).update(
                    (p, m.group(2)) for p in _split(m.group(1))
                )
    return grants


def chi_profiles(configuration: dict[str, Any]) -> dict[str, dict[str, str]]:
    profiles: dict[str, dict[str, str]] = {}
    for key, value in configuration["profiles"].items():
        name, setting = key.split("/", 1)
        profiles.setdefault(name, {})[setting] = str(value)
    return profiles


def defined_grants() -> Grants:
    return {
        u.name: {(p, target) for g in u.grants for p in g.privileges for target in g.targets()}
        for u in roles.USERS
    }


def mismatches(grants_sql: str, profiles_xml: str, chi_yaml: str) -> list[str]:
    """Every way the three deploys disagree with each other or with roles.py (empty: none)."""
    configuration = chi_configuration(chi_yaml)
    found: list[str] = []
    views = {
        "grants.sql": (sql_users(grants_sql), sql_grants(grants_sql)),
        "k8s/clickhouse.yaml": (chi_users(configuration), chi_grants(configuration)),
    }
    want_profiles = {u.name: (u.profile.name if u.profile else None) for u in roles.USERS}
    for where, (users, grants) in views.items():
        normalised = {name: (None if p == "default" else p) for name, p in users.items()}
        if normalised != want_profiles:
            found.append(f"{where}: users/profiles {normalised} != roles.py {want_profiles}")
        if grants != defined_grants():
            found.append(f"{where}: grants differ from roles.py: {grants} != {defined_grants()}")
    want_settings = {p.name: {k: str(v) for k, v in p.all_settings().items()} for p in roles.PROFILES}
    for where, profiles in (("users.d", xml_profiles(profiles_xml)), ("k8s", chi_profiles(configuration))):
        if profiles != want_settings:
            found.append(f"{where}: profiles {profiles} != roles.py {want_settings}")
    return found


# -- tests ------------------------------------------------------------------------------------------


def test_generated_files_are_up_to_date():
    assert roles.main(["--check"]) == 0, "run: .venv/bin/python infra/clickhouse/roles.py --write"


def test_grants_sql_users_xml_and_k8s_define_the_same_accounts():
    found = mismatches(
        (CH / "grants.sql").read_text(encoding="utf-8"),
        (CH / "users.d" / "classtrace.xml").read_text(encoding="utf-8"),
        (K8S / "clickhouse.yaml").read_text(encoding="utf-8"),
    )
    assert not found, "\n".join(found)


def test_the_comparison_sees_a_changed_readonly_level():
    """The check above can fail: readonly=2 for the analyst in k8s alone is reported."""
    chi = (K8S / "clickhouse.yaml").read_text(encoding="utf-8")
    edited = chi.replace("classtrace_analyst/readonly: 1", "classtrace_analyst/readonly: 2")
    assert edited != chi
    found = mismatches(
        (CH / "grants.sql").read_text(encoding="utf-8"),
        (CH / "users.d" / "classtrace.xml").read_text(encoding="utf-8"),
        edited,
    )
    assert found and "readonly" in found[0]


def test_readers_cannot_change_settings_and_writers_have_no_ddl():
    for name in ("classtrace_analyst",):
        profile = roles.user(name).profile
        assert profile is not None and profile.readonly == 1
    assert roles.SCHOOL_ACCOUNTS.profile.readonly == 1
    ddl = {"CREATE TABLE", "CREATE VIEW", "ALTER", "DROP TABLE", "DROP VIEW", "CREATE DATABASE"}
    for name in ("classtrace_sink", "classtrace_analyst"):
        held = {p for p, _ in defined_grants()[name]}
        assert not held & ddl, f"{name} holds DDL: {held & ddl}"
    analyst = defined_grants()["classtrace_analyst"]
    assert analyst == {("SELECT", "classtrace.*")}


def test_sink_may_write_and_erase_what_it_writes_and_erases():
    from sinks.batcher import TABLE_ORDER  # every table the sink inserts into, in order

    sink = defined_grants()["classtrace_sink"]
    for table in (*TABLE_ORDER, "events_ingest", "erasures"):
        assert ("INSERT", f"classtrace.{table}") in sink, table
    assert {("ALTER DELETE", "classtrace.events"), ("ALTER UPDATE", "classtrace.lesson_summary")} <= sink
    assert ("SELECT", "classtrace.schema_migrations") in sink
    assert ("SELECT", "classtrace.dead_letters") not in sink, "dead letters keep raw payloads"


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    return compose


URL = re.compile(r"^http://(\w+):(.+)@")


@pytest.mark.parametrize("role", ["migrate", "sink", "dashboard"])
def test_compose_roles_log_in_as_their_users_with_their_secrets(role):
    services = _compose()["services"]
    user = roles.user(role)
    m = URL.match(services[role]["environment"]["CLASSTRACE_CLICKHOUSE_URL"])
    assert m, services[role]["environment"]
    assert m.group(1) == user.name
    assert m.group(2).startswith(f"${{{user.secret}:?"), m.group(2)
    assert user.name in sql_users((CH / "grants.sql").read_text(encoding="utf-8"))
    assert "init-clickhouse-users" in services[role].get("depends_on", {}) or role != "migrate"


def test_compose_init_service_gets_every_password_and_runs_the_generated_files():
    init = _compose()["services"]["init-clickhouse-users"]
    for u in roles.USERS:
        assert init["environment"][u.secret].startswith(f"${{{u.secret}:?")
    mounted = {v.split(":")[0] for v in init["volumes"]}
    assert mounted == {"./clickhouse/apply-grants.sh", "./clickhouse/grants.sql", "./clickhouse/schools.sql"}
    example = (INFRA / ".env.example").read_text(encoding="utf-8")
    assert all(f"\n{u.secret}=" in example for u in roles.USERS)


def _k8s_env(role: str) -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") in ("Deployment", "Job"):
                pod = doc["spec"]["template"]
                if pod["metadata"]["labels"]["app.kubernetes.io/component"] == role:
                    return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    raise KeyError(role)


@pytest.mark.parametrize("role", ["migrate", "sink", "dashboard"])
def test_k8s_roles_log_in_as_their_users_with_their_secrets(role):
    user = roles.user(role)
    env = _k8s_env(role)
    m = URL.match(env["CLASSTRACE_CLICKHOUSE_URL"]["value"])
    assert m and m.group(1) == user.name
    assert env["CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == user.secret
    configuration = chi_configuration((K8S / "clickhouse.yaml").read_text(encoding="utf-8"))
    assert configuration["users"][f"{user.name}/k8s_secret_password"] == f"classtrace-secrets/{user.secret}"


def test_apply_script_hashes_the_environment_passwords_into_the_sql(tmp_path):
    """apply-grants.sh with a stand-in clickhouse client: what it would send the server."""
    sent = tmp_path / "sent.sql"
    stub = tmp_path / "bin" / "clickhouse"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\ncat >> "{sent}"\n', encoding="utf-8")
    stub.chmod(0o755)
    passwords = {u.secret: f"pw-{u.role}-{i}" for i, u in enumerate(roles.USERS)}
    env = {
        "PATH": f"{stub.parent}:{os.environ['PATH']}",
        "CLICKHOUSE_HOST": "clickhouse",
        "CLICKHOUSE_ADMIN_PASSWORD": "admin",
        "SQL_DIR": str(CH),
        **passwords,
    }
    subprocess.run(["bash", str(CH / "apply-grants.sh")], env=env, check=True, capture_output=True)
    text = sent.read_text(encoding="utf-8")
    live = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert "${" not in live
    for u in roles.USERS:
        digest = hashlib.sha256(passwords[u.secret].encode()).hexdigest()
        assert f"CREATE USER IF NOT EXISTS {u.name} IDENTIFIED WITH sha256_hash BY '{digest}'" in text
    assert "CREATE ROW POLICY OR REPLACE own_school" in text
    missing = {k: v for k, v in env.items() if k != "CLICKHOUSE_SINK_PASSWORD"}
    refused = subprocess.run(
        ["bash", str(CH / "apply-grants.sh")], check=False, env=missing, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "CLICKHOUSE_SINK_PASSWORD" in refused.stderr


def test_school_account_statements_pin_the_school():
    sql = roles.school_account_sql("s042")
    assert "SQL_classtrace_school = 's042' CONST" in sql
    assert "GRANT classtrace_school_role TO school_s042;" in sql
    with pytest.raises(ValueError):
        roles.school_account_sql("s1'; DROP")
