"""deploy/: what cannot run here (Docker, Kubernetes) checked by reading the files.

The files parse; every setting the app reads (models/settings.py, the API's settings of
API.md, the outside-dev rule's codec key and SMTP TLS) is set for each worker and API, in
compose and in k8s, with values the settings class accepts; every file a service mounts or
the Dockerfile copies exists; the names that must agree across files agree (API upstreams,
issuer, audience, task queue, search attributes, uid). What can run here does: the
certificate job (a real TLS handshake trusting its CA through SSL_CERT_FILE), the
namespace script (against the dev server from the venv), the secrets generator.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from models import search_attributes as sa
from models.settings import GdSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent

# API.md, "Process and settings", and the API's own settings class once it exists (its
# dev-only key file excepted: these stacks run in oidc mode).
API_SETTINGS = {"GD_API_HOST", "GD_API_PORT", "GD_AUTH_MODE", "GD_AUTH_ISSUER",
                "GD_AUTH_AUDIENCE", "GD_AUTH_JWKS_URL"}
API_DEV_ONLY = {"GD_AUTH_DEV_KEY"}
# Outside dev the worker refuses to start without an encryption key and TLS (with auth) to a
# relay that is not local (issue 14, part 2 item 5); mail.py and that rule read these names.
OUTSIDE_DEV = {"GD_ENV", "GD_CODEC_KEYS", "GD_SMTP_STARTTLS", "GD_SMTP_SSL", "GD_SMTP_USERNAME",
               "GD_SMTP_PASSWORD", "GD_SMTP_LOCAL_HOSTNAME"}
API_ROLES = {"customer", "technician", "analyst", "supervisor", "inspector", "auditor", "system"}


def app_settings() -> set[str]:
    """Every GD_* name the settings class reads (so a new field must be set here too)."""
    return {"GD_" + name.upper() for name in GdSettings.model_fields} | OUTSIDE_DEV


def api_settings() -> set[str]:
    try:
        from api.config import ApiSettings
    except ModuleNotFoundError:  # the API (issue 16) not merged yet: API.md's list
        return set(API_SETTINGS)
    return API_SETTINGS | {"GD_" + name.upper() for name in ApiSettings.model_fields} - API_DEV_ONLY


# --- reading ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all_yaml(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def gen_env() -> dict[str, str]:
    """What `sh deploy/gen-env.sh > deploy/.env` writes."""
    out = subprocess.run(["sh", str(DEPLOY / "gen-env.sh")], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line and not line.startswith("#"))


_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, dotenv: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} with deploy/.env's values."""
    if isinstance(value, dict):
        return {k: interpolate(v, dotenv) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, dotenv) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.groups()
        if name in dotenv:
            return dotenv[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"compose reads ${{{name}}}, which deploy/gen-env.sh does not write")

    return _VAR.sub(one, value)


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    return gen_env()


@pytest.fixture(scope="module")
def compose(dotenv) -> dict:
    return interpolate(load_yaml(DEPLOY / "compose.yaml"), dotenv)


def services_running(compose: dict, subcommand: str) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items()
            if svc.get("image", "").startswith("gd-orchestrator") and svc.get("command") == ["gd", subcommand]}


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume."""
    found = []
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        found.append((parts[0], parts[1]))
    return found


def settings_from(env: dict[str, str], monkeypatch) -> GdSettings:
    """The settings class reading exactly this environment (types and validators apply)."""
    for name in list(os.environ):
        if name.startswith("GD_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return GdSettings()


# --- every file parses --------------------------------------------------------------------------


def test_every_yaml_and_json_file_in_deploy_parses():
    yamls = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})
    jsons = sorted(DEPLOY.rglob("*.json"))
    assert len(yamls) >= 12 and len(jsons) >= 2, (yamls, jsons)
    for path in yamls:
        docs = load_all_yaml(path)
        assert docs and all(isinstance(doc, dict) for doc in docs), path
    for path in jsons:
        assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict), path
    for script in DEPLOY.rglob("*.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True, timeout=30)


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[dict]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = re.sub(r"\\\n", " ", text).splitlines()
    args: dict[str, str] = {}
    stages: list[dict] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            stages.append({"image": image, "name": rest.split()[-1] if " AS " in rest.upper() else None,
                           "ops": []})
        else:
            stages[-1]["ops"].append((op, rest))
    return stages


def test_dockerfile_is_multi_stage_slim_and_ends_as_a_user_without_privileges():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert {s["image"] for s in stages} == {"python:3.11-slim"}
    users = [rest for op, rest in stages[-1]["ops"] if op == "USER"]
    assert users, "the runtime stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users
    # Nothing is installed once the build is done, and pip would not reach an index.
    runtime = stages[-1]["ops"]
    assert not any(op == "RUN" and "pip install" in rest for op, rest in runtime)
    assert any(op == "ENV" and "PIP_NO_INDEX=1" in rest for op, rest in runtime)
    assert any(op == "COPY" and rest.startswith("--from=") for op, rest in runtime)


def test_dockerfile_copies_every_module_the_project_installs_and_each_source_exists():
    stages = dockerfile_stages()
    sources: list[str] = []
    for stage in stages:
        for op, rest in stage["ops"]:
            if op == "COPY" and not rest.startswith("--from="):
                sources += shlex.split(rest)[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    tool = project["tool"]["setuptools"]
    wanted = {f"{m}.py" for m in tool["py-modules"]}
    wanted |= {p.rstrip("*") + "/" for p in tool["packages"]["find"]["include"]}
    wanted |= {"pyproject.toml", project["project"]["readme"], "templates/"}
    assert wanted <= set(sources), f"not copied into the image: {sorted(wanted - set(sources))}"
    # The build context sends each of them (deploy/Dockerfile.dockerignore ignores the rest).
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    included = {line[1:] for line in ignore if line.startswith("!")}
    assert set(sources) <= included, f"ignored by the build context: {sorted(set(sources) - included)}"


def dockerfile_uid() -> int:
    users = [rest for op, rest in dockerfile_stages()[-1]["ops"] if op == "USER"]
    return int(users[-1].split(":")[0])


# --- compose ------------------------------------------------------------------------------------


def test_compose_runs_two_workers_and_two_apis_each_with_every_setting(compose, monkeypatch):
    workers, apis = services_running(compose, "worker"), services_running(compose, "api")
    assert len(workers) == 2 and len(apis) == 2, (sorted(workers), sorted(apis))
    for name, svc in {**workers, **apis}.items():
        env = svc["environment"]
        wanted = app_settings() | (api_settings() if name in apis else set())
        missing = wanted - set(env)
        assert not missing, f"{name}: not set: {sorted(missing)}"
        settings = settings_from({k: v for k, v in env.items() if k.startswith("GD_")}, monkeypatch)
        # Read from the environment, not defaulted (a misspelt name would default silently).
        assert (settings.temporal_address, settings.database_url, str(settings.blob_dir)) == \
            (env["GD_TEMPORAL_ADDRESS"], env["GD_DATABASE_URL"], env["GD_BLOB_DIR"]), name
        assert env["GD_SMTP_STARTTLS"] == "true" and env["GD_CODEC_KEYS"], name
        assert env["GD_ENV"] != "dev", name
    for name, svc in apis.items():
        assert svc["environment"]["GD_AUTH_MODE"] == "oidc", name


def test_compose_app_database_is_not_temporals_and_documents_live_in_it(compose):
    services = compose["services"]
    app = {**services_running(compose, "worker"), **services_running(compose, "api")}
    db_hosts = {urlsplit(svc["environment"]["GD_DATABASE_URL"]).hostname for svc in app.values()}
    assert len(db_hosts) == 1
    (db_host,) = db_hosts
    assert db_host in services and services[db_host]["image"].startswith("postgres:")
    temporal_db = services["temporal"]["environment"]["POSTGRES_SEEDS"]
    assert temporal_db in services and temporal_db != db_host
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    from activities.blobs import blob_backend

    for name, svc in app.items():
        assert urlsplit("//" + svc["environment"]["GD_TEMPORAL_ADDRESS"]).hostname in services, name
        env = svc["environment"]
        assert blob_backend(GdSettings(database_url=env["GD_DATABASE_URL"],
                                       blob_url=env["GD_BLOB_URL"])) == "database", name
        # Stateless: no volume shared between app containers (documents are in PostgreSQL).
        assert {target for _, target in mounts(svc)} == {"/var/lib/gd/tls/ca"}, name
    assert "gd-blobs" not in compose["volumes"]


def test_compose_migrates_once_before_any_worker_or_api_starts(compose):
    services = compose["services"]
    migrate = services["gd-migrate"]
    assert migrate["command"] == ["gd", "db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["environment"]["GD_DATABASE_URL"] == \
        services["worker-1"]["environment"]["GD_DATABASE_URL"]
    for name, svc in {**services_running(compose, "worker"), **services_running(compose, "api")}.items():
        assert svc["depends_on"]["gd-migrate"]["condition"] == "service_completed_successfully", name


def test_compose_every_mounted_file_and_build_input_exists(compose):
    checked = 0
    for name, svc in compose["services"].items():
        for source, _target in mounts(svc):
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
                checked += 1
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        if "build" in svc:
            context = DEPLOY / svc["build"]["context"]
            assert (context / svc["build"]["dockerfile"]).is_file(), name
        for dependency in svc.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
    assert checked >= 8


def test_compose_proxy_balances_exactly_the_api_instances_on_readyz(compose):
    apis = services_running(compose, "api")
    ports = {svc["environment"]["GD_API_PORT"] for svc in apis.values()}
    caddy = (DEPLOY / "caddy" / "Caddyfile").read_text(encoding="utf-8")
    upstreams = re.search(r"^\s*reverse_proxy\s+([^{\n]+)", caddy, re.M).group(1).split()
    assert sorted(upstreams) == sorted(f"{name}:{port}" for name in apis for port in ports)
    assert re.search(r"^\s*health_uri\s+/readyz\s*$", caddy, re.M)
    proxy = compose["services"]["proxy"]
    assert ("./caddy/Caddyfile", "/etc/caddy/Caddyfile") in mounts(proxy)


def test_compose_prometheus_scrapes_each_api_and_grafana_reads_prometheus(compose):
    apis = services_running(compose, "api")
    config = load_yaml(DEPLOY / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_job = jobs["gd-api"]
    assert api_job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for group in api_job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:{svc['environment']['GD_API_PORT']}" for name, svc in apis.items()}
    for job in jobs.values():
        for group in job["static_configs"]:
            for target in group["targets"]:
                assert target.split(":")[0] in compose["services"], target
    temporal_port = compose["services"]["temporal"]["environment"]["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1]
    assert {t for g in jobs["temporal-server"]["static_configs"] for t in g["targets"]} == {f"temporal:{temporal_port}"}
    workers = services_running(compose, "worker")
    worker_targets = {t for g in jobs["gd-worker"]["static_configs"] for t in g["targets"]}
    assert worker_targets == {f"{name}:{svc['environment']['GD_METRICS_ADDRESS'].rsplit(':', 1)[1]}"
                              for name, svc in workers.items()}
    datasources = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")["datasources"]
    assert urlsplit(datasources[0]["url"]).netloc == "prometheus:9090"
    dashboards = load_yaml(DEPLOY / "grafana/provisioning/dashboards/gd.yaml")["providers"]
    grafana_mounts = dict((t, s) for s, t in mounts(compose["services"]["grafana"]))
    assert (DEPLOY / grafana_mounts[dashboards[0]["options"]["path"]]).is_dir()


# --- the Grafana dashboard -------------------------------------------------------------------

# Names a dashboard may use that neither this code nor the Temporal SDK exports: Prometheus's
# own target health and the Temporal server's (its PROMETHEUS_ENDPOINT in compose).
OTHER_PROGRAMS_METRICS = {"up": "Prometheus", "service_requests": "Temporal server"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "le", "inf", "nan"}
SDK_CORE = Path(__import__("temporalio").__file__).parent / "bridge" / "sdk-core" / "crates"


def code_metrics() -> dict[str, set[str]]:
    """Each gd_* metric the code defines, with the sample names Prometheus stores for it:
    the API's registry (counters get ``_total``, histograms ``_bucket``/``_count``/``_sum``),
    the store's gauges (api.metrics.STORE_METRICS) and the worker's counters on the SDK
    meter (worker.WORKER_METRICS; the runtime adds no suffix: counters_total_suffix=False)."""
    from api.metrics import REGISTRY, STORE_METRICS
    from worker import WORKER_METRICS

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    found = {family.name: {family.name + s for s in suffixes[family.type]}
             for family in REGISTRY.collect()}
    found.update({name: {name} for name in STORE_METRICS})
    found.update({name: {name} for name in WORKER_METRICS})
    return found


def sdk_metrics() -> set[str]:
    """The SDK's metric names (as its Rust core defines them), with the runtime's prefix."""
    names = set()
    for source in (SDK_CORE / "sdk-core/src/telemetry/metrics.rs",
                   SDK_CORE / "common/src/telemetry/metrics.rs"):
        names |= set(re.findall(r'"([a-z][a-z0-9_]+)"', source.read_text(encoding="utf-8")))
    return {"temporal_" + name for name in names}


def expr_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, label matchers, grouping
    labels, ranges and keywords left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", expr):
        if match.group(2) or match.group(1).lower() in PROMQL_WORDS:
            continue
        names.add(match.group(1))
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads((DEPLOY / "grafana/dashboards/gd-overview.json").read_text(encoding="utf-8"))
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]


def test_expr_metric_names_reads_promql():
    assert expr_metric_names('histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{x="y"}[5m])))') == {"a_bucket"}
    assert expr_metric_names("max by (kind) (b) / ignoring(t) c * 60 and on (job) up offset 5m") == {"b", "c", "up"}


def test_dashboard_shows_every_gd_metric_and_only_metrics_something_exports():
    exprs = dashboard_exprs()
    used = {name for _, expr in exprs for name in expr_metric_names(expr)}
    ours = code_metrics()
    assert {"gd_api_requests", "gd_requests_open", "gd_emails_total"} <= set(ours)  # the reading works
    missing = sorted(family for family, samples in ours.items() if not samples & used)
    assert not missing, f"gd_* metrics without a panel: {missing}"
    exported = set().union(*ours.values()) | set(OTHER_PROGRAMS_METRICS)
    sdk = sdk_metrics()
    assert "temporal_activity_execution_failed" in sdk
    unknown = sorted(
        name for name in used
        if name not in exported
        and re.sub(r"_(bucket|count|sum)$", "", name) not in sdk
    )
    assert not unknown, f"panel expressions read metrics nothing exports: {unknown}"
    for title, expr in exprs:
        assert expr_metric_names(expr), title


def test_dashboard_panels_have_unique_ids_and_read_the_provisioned_datasource():
    board = json.loads((DEPLOY / "grafana/dashboards/gd-overview.json").read_text(encoding="utf-8"))
    datasource = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")["datasources"][0]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_compose_issuer_audience_and_keys_are_the_realms(compose):
    realm = json.loads((DEPLOY / "keycloak/realm-gd.json").read_text(encoding="utf-8"))
    keycloak = compose["services"]["keycloak"]
    assert any(target.startswith("/opt/keycloak/data/import/") and (DEPLOY / source).is_file()
               for source, target in mounts(keycloak))
    assert "--import-realm" in keycloak["command"]
    issuer = f"{keycloak['environment']['KC_HOSTNAME']}/realms/{realm['realm']}"
    clients = {c["clientId"] for c in realm["clients"]}
    for name, svc in services_running(compose, "api").items():
        env = svc["environment"]
        assert env["GD_AUTH_ISSUER"] == issuer, name
        assert env["GD_AUTH_AUDIENCE"] in clients, name
        jwks = urlsplit(env["GD_AUTH_JWKS_URL"])
        assert jwks.hostname in compose["services"], name
        assert jwks.path == f"/realms/{realm['realm']}/protocol/openid-connect/certs", name


def test_compose_mail_goes_over_starttls_to_mailpit_trusting_the_stacks_ca(compose):
    services = compose["services"]
    mailpit = services["mailpit"]["environment"]
    assert mailpit["MP_SMTP_REQUIRE_STARTTLS"] == "true"
    certs = services["dev-certs"]
    cert_targets = {target: source for source, target in mounts(certs)}
    ca_dir, server_dir = certs["command"][-3], certs["command"][-2]
    mailpit_mounts = {target: source for source, target in mounts(services["mailpit"])}
    for key in ("MP_SMTP_TLS_CERT", "MP_SMTP_TLS_KEY"):
        directory = str(Path(mailpit[key]).parent)
        assert mailpit_mounts[directory] == cert_targets[server_dir], key
    for name, svc in {**services_running(compose, "worker"), **services_running(compose, "api")}.items():
        env = svc["environment"]
        assert env["GD_SMTP_HOST"] == "mailpit" and env["GD_SMTP_PORT"] == mailpit["MP_SMTP_BIND_ADDR"].rsplit(":", 1)[1]
        assert mailpit["MP_SMTP_AUTH"] == f"{env['GD_SMTP_USERNAME']}:{env['GD_SMTP_PASSWORD']}", name
        app_mounts = {target: source for source, target in mounts(svc)}
        ca_file = Path(env["SSL_CERT_FILE"])
        assert app_mounts[str(ca_file.parent)] == cert_targets[ca_dir], name
        assert ca_file.name == "ca.crt"
        assert "dev-certs" in svc["depends_on"]


def test_compose_creates_exactly_the_contracts_search_attributes(compose):
    script = (DEPLOY / "temporal/setup-namespace.sh").read_text(encoding="utf-8")
    block = re.search(r'SEARCH_ATTRIBUTES="\n(.*?)"', script, re.S).group(1)
    declared = dict(line.split(":") for line in block.split())
    assert declared == sa.CLI_TYPES
    setup = compose["services"]["temporal-setup"]
    assert ("./temporal/setup-namespace.sh", "/scripts/setup-namespace.sh") in [
        (s, t) for s, t in mounts(setup)]
    for name in {**services_running(compose, "worker"), **services_running(compose, "api")}:
        assert compose["services"][name]["depends_on"]["temporal-setup"]["condition"] == \
            "service_completed_successfully"


# --- Keycloak realm -----------------------------------------------------------------------------


def test_realm_holds_the_seven_roles_the_audience_and_the_three_claims():
    realm = json.loads((DEPLOY / "keycloak/realm-gd.json").read_text(encoding="utf-8"))
    assert {r["name"] for r in realm["roles"]["realm"]} == API_ROLES
    clients = {c["clientId"]: c for c in realm["clients"]}
    client = clients["gd-orchestrator"]
    assert client["enabled"] and client["publicClient"] and not client.get("directAccessGrantsEnabled")
    for c in realm["clients"]:
        by_kind = {}
        for mapper in c.get("protocolMappers", []):
            by_kind.setdefault(mapper["protocolMapper"], []).append(mapper["config"])
        assert all(m["access.token.claim"] == "true" for ms in by_kind.values() for m in ms)
        roles = by_kind["oidc-usermodel-realm-role-mapper"]
        assert [(m["claim.name"], m["multivalued"]) for m in roles] == [("roles", "true")], c["clientId"]
        assert [m["included.client.audience"] for m in by_kind["oidc-audience-mapper"]] == ["gd-orchestrator"]
    attributes = {m["config"]["user.attribute"]: m["config"]["claim.name"]
                  for m in client["protocolMappers"] if m["protocolMapper"] == "oidc-usermodel-attribute-mapper"}
    assert attributes == {"gd_council_key": "gd_council_key", "gd_document": "gd_document"}
    # The attributes that make someone a party are declared, and only an admin edits them.
    provider = realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0]
    profile = json.loads(provider["config"]["kc.user.profile.config"][0])
    declared = {a["name"]: a for a in profile["attributes"]}
    for name in ("gd_council_key", "gd_document"):
        assert declared[name]["permissions"]["edit"] == ["admin"], name
    assert {"username", "email"} <= set(declared)
    service_account = next(u for u in realm["users"] if u.get("serviceAccountClientId") == "gd-integration")
    assert service_account["realmRoles"] == ["system"]
    assert clients["gd-integration"]["serviceAccountsEnabled"] and "secret" not in clients["gd-integration"]


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization lists {name}, which does not exist"
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(listed) == on_disk, "a manifest in deploy/k8s is not applied (or vice versa)"
    objects = {}
    for name in listed + ["secret.example.yaml"]:
        for doc in load_all_yaml(K8S / name):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod(k8s, name: str) -> dict:
    return k8s[("Deployment", name)]["spec"]["template"]


def container_env(k8s, name: str) -> dict[str, str]:
    """What the container sees: its envFrom ConfigMap/Secret (each must exist) and env."""
    (container,) = pod(k8s, name)["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s[("ConfigMap", source["configMapRef"]["name"])]["data"])
        else:
            env.update(k8s[("Secret", source["secretRef"]["name"])]["stringData"])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def test_k8s_worker_and_api_get_every_setting(k8s, monkeypatch):
    for name, command, wanted in [("gd-worker", "worker", app_settings()),
                                  ("gd-api", "api", app_settings() | api_settings())]:
        (container,) = pod(k8s, name)["spec"]["containers"]
        assert container["command"] == ["gd", command]
        env = container_env(k8s, name)
        missing = wanted - set(env)
        assert not missing, f"{name}: not set: {sorted(missing)}"
        settings = settings_from({k: v for k, v in env.items() if k.startswith("GD_")}, monkeypatch)
        assert settings.task_queue == env["GD_TASK_QUEUE"] and str(settings.blob_dir) == env["GD_BLOB_DIR"]
        assert env["GD_SMTP_STARTTLS"] == "true" and env["GD_ENV"] != "dev"
    secret_keys = set(k8s[("Secret", "gd-secrets")]["stringData"])
    assert {"GD_DATABASE_URL", "GD_CODEC_KEYS", "GD_SMTP_PASSWORD"} <= secret_keys
    assert not secret_keys & set(k8s[("ConfigMap", "gd-config")]["data"])


def test_k8s_api_probes_hit_healthz_and_readyz_on_the_served_port(k8s):
    (container,) = pod(k8s, "gd-api")["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert str(ports["http"]) == container_env(k8s, "gd-api")["GD_API_PORT"]
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert all(p["port"] in (ports["http"], "http") for p in probes.values())
    service = k8s[("Service", "gd-api")]
    assert service["spec"]["selector"].items() <= pod(k8s, "gd-api")["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", ports["http"])


def test_k8s_pods_run_as_the_images_user_without_privileges_and_keep_no_documents(k8s):
    uid = dockerfile_uid()
    from activities.blobs import blob_backend

    assert not [key for key in k8s if key[0] == "PersistentVolumeClaim"]
    for name in ("gd-worker", "gd-api"):
        spec = pod(k8s, name)["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid, name
        (container,) = spec["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        env = container_env(k8s, name)
        assert blob_backend(GdSettings(database_url=env["GD_DATABASE_URL"],
                                       blob_url=env["GD_BLOB_URL"])) == "database", name
        assert all("persistentVolumeClaim" not in v for v in spec["volumes"]), name


def test_k8s_migration_job_and_worker_metrics_port(k8s):
    job = k8s[("Job", "gd-migrate")]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["command"] == ["gd", "db", "upgrade"]
    assert container["envFrom"] == pod(k8s, "gd-worker")["spec"]["containers"][0]["envFrom"]
    assert job["securityContext"]["runAsUser"] == dockerfile_uid()
    (worker,) = pod(k8s, "gd-worker")["spec"]["containers"]
    port = int(container_env(k8s, "gd-worker")["GD_METRICS_ADDRESS"].rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {"metrics": port}
    annotations = pod(k8s, "gd-worker")["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


def test_k8s_disruption_budgets_and_autoscalers_target_the_deployments(k8s):
    for name in ("gd-worker", "gd-api"):
        pdb = k8s[("PodDisruptionBudget", name)]
        labels = pod(k8s, name)["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert pdb["spec"]["minAvailable"] >= 1
    scaled = k8s[("ScaledObject", "gd-worker")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "gd-worker" and scaled["minReplicaCount"] >= 2
    (trigger,) = scaled["triggers"]
    env = container_env(k8s, "gd-worker")
    assert trigger["type"] == "temporal"
    assert trigger["metadata"]["taskQueue"] == env["GD_TASK_QUEUE"]
    assert trigger["metadata"]["namespace"] == env["GD_NAMESPACE"]
    assert trigger["metadata"]["endpoint"] == env["GD_TEMPORAL_ADDRESS"]
    assert k8s[("HorizontalPodAutoscaler", "gd-api")]["spec"]["scaleTargetRef"]["name"] == "gd-api"
    for name in ("gd-worker", "gd-api"):
        assert "replicas" not in k8s[("Deployment", name)]["spec"], "the autoscaler owns replicas"


# --- what runs here -----------------------------------------------------------------------------


def test_gen_env_writes_a_codec_key_the_app_accepts_and_url_safe_passwords():
    from codec import codec_from_env

    first, second = gen_env(), gen_env()
    assert codec_from_env({"GD_CODEC_KEYS": first["GD_CODEC_KEYS"]}) is not None
    for name, value in first.items():
        assert value != second[name], f"{name} is not random"
        if name.endswith("PASSWORD"):
            assert re.fullmatch(r"[A-Za-z0-9]{24,}", value), name


def _tls_server(crt: Path, key: Path) -> tuple[int, threading.Thread, list]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    results: list = []

    def serve():
        with listener:
            for _ in range(2):
                try:
                    conn, _ = listener.accept()
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"220 ok\n")
                        results.append("handshake")
                except (ssl.SSLError, OSError) as error:
                    results.append(type(error).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, results


CLIENT = """
import socket, ssl, sys
context = ssl.create_default_context()          # what aiosmtplib builds for STARTTLS
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="mailpit") as tls:
        print(tls.recv(16).decode().strip())
"""


def test_dev_certs_make_a_mailpit_certificate_the_workers_trust_through_ssl_cert_file(tmp_path):
    script = DEPLOY / "dev-certs/make_dev_certs.py"
    ca_dir, server_dir = tmp_path / "ca", tmp_path / "mailpit"
    made = subprocess.run([sys.executable, str(script), str(ca_dir), str(server_dir), "mailpit"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert made.stdout.strip() == "certificados criados"
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt"]  # the CA's key is never written
    port, thread, results = _tls_server(server_dir / "server.crt", server_dir / "server.key")
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    trusted = subprocess.run([sys.executable, "-c", CLIENT, str(port)], capture_output=True, text=True,
                             timeout=60, env={**env, "SSL_CERT_FILE": str(ca_dir / "ca.crt")})
    assert trusted.returncode == 0 and trusted.stdout.strip() == "220 ok", trusted.stderr
    # Without the stack's CA the same certificate is refused: the trust comes from SSL_CERT_FILE.
    untrusted = subprocess.run([sys.executable, "-c", CLIENT, str(port)], capture_output=True,
                               text=True, timeout=60, env=env)
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    thread.join(timeout=20)
    assert results[0] == "handshake"
    before = (server_dir / "server.crt").read_bytes()
    again = subprocess.run([sys.executable, str(script), str(ca_dir), str(server_dir)],
                           capture_output=True, text=True, timeout=60, check=True)
    assert again.stdout.strip() == "certificados já existem: mantidos"
    assert (server_dir / "server.crt").read_bytes() == before


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_setup_namespace_script_creates_the_namespace_and_attributes_once(tmp_path):
    temporal = BIN / "temporal"
    port = _free_port()
    server = subprocess.Popen(
        [str(temporal), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--http-port", str(_free_port()), "--metrics-port", str(_free_port()), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}",
               "TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "GD_NAMESPACE": "gd-deploy-test"}
        run = lambda: subprocess.run(["sh", str(DEPLOY / "temporal/setup-namespace.sh")], env=env,  # noqa: E731
                                     capture_output=True, text=True, timeout=120)
        first = run()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "namespace gd-deploy-test já existe" not in first.stdout
        listed = subprocess.run([str(temporal), "operator", "search-attribute", "list", "--address",
                                 f"127.0.0.1:{port}", "-n", "gd-deploy-test", "-o", "json"],
                                capture_output=True, text=True, timeout=60, check=True).stdout
        spelled = {"INDEXED_VALUE_TYPE_KEYWORD": "Keyword", "INDEXED_VALUE_TYPE_DATETIME": "Datetime",
                   "INDEXED_VALUE_TYPE_BOOL": "Bool"}
        custom = json.loads(listed)["customAttributes"]
        normalized = {name: spelled.get(kind, kind) for name, kind in custom.items()}
        assert normalized == sa.CLI_TYPES, listed
        second = run()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "namespace gd-deploy-test já existe" in second.stdout
        assert second.stdout.count("já existe") == 1 + len(sa.CLI_TYPES)
    finally:
        server.terminate()
        server.wait(timeout=30)
