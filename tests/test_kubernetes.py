"""The Kubernetes manifests (deploy/kubernetes): rendered, schema-checked offline, held to rotator's needs.

Each overlay is rendered with `kubectl kustomize` when kubectl is installed, else with the small
renderer in tests/kustomize.py, which handles exactly what the kustomizations use and refuses
anything else; when kubectl is there, both renderings must agree.
"""

import copy
import json
import re
import shutil
import subprocess
import tomllib

from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from rotator.doors import wiring
from rotator.doors.config import Config, parse_config
from rotator.journal.sqlite import sqlite_path
from tests.kustomize import Obj, apply_json_patch, render, render_fallback, render_kubectl
from tests.metrics_sample import every_series


ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("daemon", "cronjob")
EXAMPLE = "my-overlay"  # the documented "your overlay" example, on top of overlays/daemon
HA = "ha"  # three replicas on PostgreSQL, on top of overlays/daemon
CRON_PG = "cronjob-postgresql"  # the CronJob on PostgreSQL, beside the replicas
DIRECTORIES = {
    "daemon": KUBERNETES / "overlays" / "daemon",
    "cronjob": KUBERNETES / "overlays" / "cronjob",
    EXAMPLE: KUBERNETES / "examples" / EXAMPLE,
    HA: KUBERNETES / "overlays" / HA,
    CRON_PG: KUBERNETES / "examples" / CRON_PG,
}
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
GENERATED_CONFIG = re.compile(r"rotator-config-[a-z0-9]{10}")
OPERATIONS = ROOT / "docs" / "operations.md"
SCHEMA_VERSION = "1.30"
UID = 10001
PORT = 8080
CONFIG_MOUNT = "/etc/rotator"
STATE_MOUNT = "/var/lib/rotator"
TMP_MOUNT = "/tmp"  # noqa: S108 - the path an emptyDir is mounted at, not a file this test writes
SECRET_KEYS = {
    "ROTATOR_GITLAB_TOKEN",
    "ROTATOR_INFISICAL_IDENTITY_ID",
    "ROTATOR_API_TOKEN",
    "ROTATOR_WEBHOOK_URL",
}
#: Infisical Kubernetes Auth: where the projected token is mounted, and its audience.
INFISICAL_MOUNT = "/var/run/secrets/infisical"
INFISICAL_AUDIENCE = "infisical"
TOKEN_FILE_ENV = {"name": "ROTATOR_INFISICAL_KUBERNETES_TOKEN_FILE", "value": f"{INFISICAL_MOUNT}/token"}
#: Each workload's service account, as the Infisical identity allows it by name (docs/setup.md).
SERVICE_ACCOUNTS = {"daemon": "rotator-daemon", "cronjob": "rotator-cronjob"}
# After SIGTERM: rotations in flight get daemon.shutdown_timeout, then up to 30 s for alert
# delivery and 5 s to stop the HTTP server.
SHUTDOWN_EXTRA = timedelta(seconds=35)


@cache
def _rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(render(DIRECTORIES[overlay]))


def _sorted(objects: list[Obj]) -> list[Obj]:
    return sorted(
        objects, key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
    )


# --- accessors ------------------------------------------------------------------------------------


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """Each overlay's name."""
    name: str = request.param
    return name


def objects(overlay: str) -> list[Obj]:
    """A fresh copy of an overlay's rendered objects (tests may not spoil the cache)."""
    return copy.deepcopy(list(_rendered(overlay)))


def one(overlay: str, kind: str, name: str = "rotator") -> Obj:
    """The single rendered object of this kind and name."""
    found = [o for o in objects(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workload(overlay: str) -> Obj:
    """The Deployment (daemon) or CronJob (cronjob)."""
    return one(overlay, "Deployment" if overlay == "daemon" else "CronJob")


def pod_template(overlay: str) -> Obj:
    """The workload's pod template."""
    spec = workload(overlay)["spec"]
    template: Obj = spec["template"] if overlay == "daemon" else spec["jobTemplate"]["spec"]["template"]
    return template


def container(overlay: str) -> Obj:
    """The workload's only container."""
    containers = pod_template(overlay)["spec"]["containers"]
    assert [c["name"] for c in containers] == ["rotator"]
    first: Obj = containers[0]
    return first


def config_map(overlay: str) -> Obj:
    """The overlay's only ConfigMap: rotator-config with its generated hash suffix."""
    (found,) = [o for o in objects(overlay) if o["kind"] == "ConfigMap"]
    assert GENERATED_CONFIG.fullmatch(found["metadata"]["name"]), found["metadata"]["name"]
    return found


def config_text() -> str:
    """The rotator.yaml the ConfigMap holds (the same in both overlays)."""
    texts: set[str] = {config_map(o)["data"]["rotator.yaml"] for o in OVERLAYS}
    assert len(texts) == 1
    return texts.pop()


def config() -> Config:
    """The ConfigMap's rotator.yaml, validated by rotator's own parser."""
    return parse_config(yaml.safe_load(config_text()))


def example_secret() -> Obj:
    """The example Secret file, which no kustomization includes."""
    secret: Obj = yaml.safe_load((KUBERNETES / "base" / "secret.example.yaml").read_text(encoding="utf-8"))
    return secret


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _readme_alert_rules() -> list[Obj]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(groups:\n.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md's example alert rule is gone"
    rules: list[Obj] = yaml.safe_load(block.group(1))["groups"][0]["rules"]
    return rules


# --- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DIRECTORIES)
def test_fallback_renders_exactly_what_kubectl_renders(name: str) -> None:
    """The pure-Python fallback's objects (hash suffixes, patches) equal `kubectl kustomize`'s."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    directory = DIRECTORIES[name]
    assert _sorted(render_fallback(directory)) == _sorted(render_kubectl(directory, kubectl))


def test_render_falls_back_without_kubectl(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without kubectl on PATH, render() uses the fallback and runs no subprocess."""
    expected = render_fallback(KUBERNETES / "overlays" / overlay)

    def no_subprocess(*_args: object, **_kwargs: object) -> None:
        pytest.fail("render() ran a subprocess without kubectl")

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert render(KUBERNETES / "overlays" / overlay) == expected
    assert {o["kind"] for o in expected} >= {"Namespace", "ConfigMap", "PersistentVolumeClaim"}


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("patches: [{path: p.yaml}]", "patches entries"),
        ("patches: [{target: {kind: A}, patch: 'metadata: {}'}]", "JSON 6902 patches"),
        ("patches: [{patch: 'kind: A'}]", "patch: delete. only"),
        ("configMapGenerator: [{name: c, literals: [a=b]}]", "configMapGenerator entries"),
        ("commonLabels: {a: b}", "kustomization keys"),
        ("labels: [{pairs: {a: b}, includeSelectors: true}]", "metadata only"),
        ("images: [{name: rotator, newTag: '1', tagSuffix: x}]", "images entries"),
    ],
)
def test_fallback_refuses_what_it_does_not_handle(tmp_path: Path, line: str, refused: str) -> None:
    """A kustomization feature the fallback lacks is an error, never a silently different rendering."""
    (tmp_path / "kustomization.yaml").write_text(f"resources: []\n{line}\n", encoding="utf-8")
    with pytest.raises(NotImplementedError, match=refused):
        render_fallback(tmp_path)


# --- schemas --------------------------------------------------------------------------------------


def _check_service_monitor(monitor: Obj, service: Obj) -> None:
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def _check_prometheus_rule(rule: Obj) -> None:
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert isinstance(group["name"], str)
        assert group["rules"]
        for entry in group["rules"]:
            assert set(entry) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert ("alert" in entry) != ("record" in entry)
            assert isinstance(entry["expr"], str)
            assert entry["expr"].strip()
            assert re.fullmatch(r"(\d+[smhdwy])+", entry.get("for", "0s"))
            for mapping in (entry.get("labels", {}), entry.get("annotations", {})):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    """Built-in kinds pass the strict 1.30 schemas; the Prometheus Operator's kinds pass our own check."""
    # kubernetes_validate ships no schema for monitoring.coreos.com (ServiceMonitor, PrometheusRule),
    # so those are checked structurally here: apiVersion, kind, required fields, no unknown ones.
    for obj in objects(overlay):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert obj["metadata"]["name"] == "rotator"
            if obj["kind"] == "ServiceMonitor":
                _check_service_monitor(obj, one(overlay, "Service"))
            else:
                assert obj["kind"] == "PrometheusRule"
                _check_prometheus_rule(obj)
        else:
            assert kubernetes_validate.validate(obj, desired_version=SCHEMA_VERSION, strict=True)


def test_schema_check_catches_a_mistake() -> None:
    """The strict schema check is not vacuous: a misspelt field fails it."""
    deployment = one("daemon", "Deployment")
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, desired_version=SCHEMA_VERSION, strict=True)


def test_overlays_hold_the_expected_objects() -> None:
    """The daemon adds its Service, ingress policy and monitoring; the CronJob adds only itself."""
    base = {
        ("Namespace", "rotator"),
        ("ConfigMap", "rotator-config-HASH"),
        ("PersistentVolumeClaim", "rotator-state"),
        ("NetworkPolicy", "rotator"),
    }
    daemon = {
        ("ServiceAccount", "rotator-daemon"),
        ("Deployment", "rotator"),
        ("Service", "rotator"),
        ("NetworkPolicy", "rotator-http"),
        ("ServiceMonitor", "rotator"),
        ("PrometheusRule", "rotator"),
    }
    kinds = {
        o: sorted(
            (x["kind"], GENERATED_CONFIG.sub("rotator-config-HASH", x["metadata"]["name"]))
            for x in objects(o)
        )
        for o in OVERLAYS
    }
    assert kinds["daemon"] == sorted(base | daemon)
    assert kinds["cronjob"] == sorted(base | {("ServiceAccount", "rotator-cronjob"), ("CronJob", "rotator")})


def test_every_object_is_namespaced_and_labelled(overlay: str) -> None:
    """All objects carry app.kubernetes.io/name and sit in the one namespace the Namespace creates."""
    namespace = one(overlay, "Namespace")["metadata"]["name"]
    for obj in objects(overlay):
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rotator"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace


def test_namespace_enforces_the_restricted_pod_security_standard(overlay: str) -> None:
    """The namespace enforces Pod Security "restricted", which the pods below meet."""
    labels = one(overlay, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- the workloads --------------------------------------------------------------------------------


def test_daemon_runs_one_replica_with_recreate() -> None:
    """SQLite on a ReadWriteOnce volume: one pod, and the old one goes before the new one mounts it."""
    spec = one("daemon", "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert _matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])


def test_grace_period_outlasts_rotators_shutdown(overlay: str) -> None:
    """The pods' termination grace period exceeds daemon.shutdown_timeout plus 35 s, and 300 s."""
    grace = timedelta(seconds=pod_template(overlay)["spec"]["terminationGracePeriodSeconds"])
    assert grace > timedelta(seconds=300)
    assert grace > config().daemon.shutdown_timeout + SHUTDOWN_EXTRA


def test_pods_run_unprivileged(overlay: str) -> None:
    """Pods: non-root UID/GID/fsGroup 10001, RuntimeDefault seccomp, no service-account token."""
    spec = pod_template(overlay)["spec"]
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (UID, UID, UID)
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == SERVICE_ACCOUNTS[overlay]
    account = one(overlay, "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_pods_log_in_to_infisical_with_a_projected_token(overlay: str) -> None:
    """The token file rotator reads is a projected service-account token for audience infisical, read-only."""
    spec = pod_template(overlay)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container(overlay)["volumeMounts"]}
    assert mounts[INFISICAL_MOUNT]["readOnly"] is True
    (source,) = volumes[mounts[INFISICAL_MOUNT]["name"]]["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == INFISICAL_AUDIENCE  # never the API server's: it opens nothing in the cluster
    assert f"{INFISICAL_MOUNT}/{token['path']}" == TOKEN_FILE_ENV["value"]
    assert 600 <= token["expirationSeconds"] <= 86400  # the kubelet's bounds; it rotates at 80%
    assert TOKEN_FILE_ENV in container(overlay)["env"]


def test_containers_are_locked_down(overlay: str) -> None:
    """Containers: read-only root, no privilege escalation, no capabilities, requests and limits set."""
    for each in pod_template(overlay)["spec"]["containers"]:
        context = each["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        for bound in ("requests", "limits"):
            assert set(each["resources"][bound]) == {"cpu", "memory"}
        assert each["image"] == f"ghcr.io/example/rotator:{VERSION}"


def test_volumes_hold_config_journal_and_tmp(overlay: str) -> None:
    """Config read-only from the ConfigMap, the journal on the rotator-state claim, /tmp an emptyDir."""
    spec = pod_template(overlay)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container(overlay)["volumeMounts"]}
    assert set(mounts) == {CONFIG_MOUNT, STATE_MOUNT, TMP_MOUNT, INFISICAL_MOUNT}
    assert mounts[CONFIG_MOUNT]["readOnly"] is True
    assert (
        volumes[mounts[CONFIG_MOUNT]["name"]]["configMap"]["name"] == config_map(overlay)["metadata"]["name"]
    )
    assert not mounts[STATE_MOUNT].get("readOnly", False)
    claim = volumes[mounts[STATE_MOUNT]["name"]]["persistentVolumeClaim"]["claimName"]
    assert one(overlay, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in volumes[mounts[TMP_MOUNT]["name"]]
    journal = sqlite_path(config().state.url, Path(CONFIG_MOUNT))
    assert journal.is_absolute()
    assert journal.parent == Path(STATE_MOUNT)


def test_both_modes_share_one_journal_claim() -> None:
    """Switching between daemon and CronJob keeps the same claim, hence the same journal."""
    claims = [one(o, "PersistentVolumeClaim", "rotator-state") for o in OVERLAYS]
    assert claims[0] == claims[1]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_container_reads_the_mounted_config_and_the_secret(overlay: str) -> None:
    """Args name the mounted rotator.yaml; every secret comes from rotator-secrets, none inline."""
    each = container(overlay)
    command = "daemon" if overlay == "daemon" else "run-once"
    assert each["args"] == ["--config", f"{CONFIG_MOUNT}/rotator.yaml", command]
    assert "command" not in each  # the image's ENTRYPOINT is rotator
    assert each["envFrom"] == [{"secretRef": {"name": example_secret()["metadata"]["name"]}}]
    assert each["env"] == [TOKEN_FILE_ENV]  # a path, not a secret


def test_daemon_probes_and_service_use_port_8080() -> None:
    """Liveness on /healthz, readiness on /readyz, both on 8080, which daemon.listen and the Service use."""
    each = container("daemon")
    assert each["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": PORT}
    assert each["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT}
    assert each["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    assert config().daemon.listen == f"0.0.0.0:{PORT}"
    service = one("daemon", "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}
    ]
    assert _matches(service["spec"]["selector"], pod_template("daemon")["metadata"]["labels"])


def test_cronjob_runs_once_an_hour_one_at_a_time() -> None:
    """Forbid overlap, skip a badly missed run, one retry, bounded history, and done before the next run."""
    spec = one("cronjob", "CronJob")["spec"]
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert job["activeDeadlineSeconds"] + pod["terminationGracePeriodSeconds"] < 3600
    assert container("cronjob")["args"][-1] == "run-once"
    assert not {"ports", "livenessProbe", "readinessProbe"} & set(container("cronjob"))


def test_cronjob_does_not_retry_rotators_own_verdicts() -> None:
    """Exit 1 (a target needs attention) and 2 (bad config) fail the Job at once; a drain never counts."""
    rules = one("cronjob", "CronJob")["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "rotator", "operator": "In", "values": [1, 2]}


# --- configuration and secrets --------------------------------------------------------------------


def test_configmap_is_accepted_by_rotator(tmp_path: Path) -> None:
    """rotator.yaml parses, passes parse_config, and loads as `rotator --config` would (cron included)."""
    text = config_text()
    parsed = parse_config(yaml.safe_load(text))
    assert parsed.state.url == "sqlite:////var/lib/rotator/state.db"
    assert parsed.gitlab.url.endswith(".example.com")
    assert parsed.targets
    path = tmp_path / "rotator.yaml"
    path.write_text(text, encoding="utf-8")
    assert wiring.load(str(path), {}) == parse_config(yaml.safe_load(text), base_dir=tmp_path)


def test_example_secret_names_every_variable_with_placeholders() -> None:
    """The example Secret has exactly the documented variables, placeholder values, and a valid schema."""
    secret = example_secret()
    assert secret["stringData"].keys() == SECRET_KEYS
    for value in secret["stringData"].values():
        assert "replace-me" in value
        assert "glpat-" not in value
    assert kubernetes_validate.validate(secret, desired_version=SCHEMA_VERSION, strict=True)
    raw = (KUBERNETES / "base" / "secret.example.yaml").read_text(encoding="utf-8")
    assert "ROTATOR_INFISICAL_TOKEN" in raw  # the alternative to the client id and secret, explained


def test_no_overlay_applies_a_secret(overlay: str) -> None:
    """`kubectl apply -k` never overwrites the real rotator-secrets with the example's placeholders."""
    assert not [o for o in objects(overlay) if o["kind"] == "Secret"]
    assert example_secret()["metadata"]["namespace"] == one(overlay, "Namespace")["metadata"]["name"]


# --- network --------------------------------------------------------------------------------------


def _policies(overlay: str) -> Iterator[Obj]:
    pod_labels = pod_template(overlay)["metadata"]["labels"]
    for obj in objects(overlay):
        if obj["kind"] == "NetworkPolicy" and _matches(obj["spec"]["podSelector"]["matchLabels"], pod_labels):
            yield obj


def test_egress_is_only_dns_and_https(overlay: str) -> None:
    """Egress only to DNS (UDP+TCP 53, kube-dns in kube-system) and TCP 443; ingress is denied by default."""
    policies = list(_policies(overlay))
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in policies)
    ports: set[tuple[str, int]] = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            assert rule["ports"], "an egress rule without ports allows every port"
            rule_ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
            ports |= rule_ports
            if {port for _, port in rule_ports} == {53}:
                (peer,) = rule["to"]
                assert peer["namespaceSelector"]["matchLabels"] == {
                    "kubernetes.io/metadata.name": "kube-system"
                }
                assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


def test_ingress_is_only_port_8080_and_only_for_the_daemon(overlay: str) -> None:
    """The daemon accepts TCP 8080 only; the CronJob, which serves nothing, accepts nothing."""
    rules = [rule for policy in _policies(overlay) for rule in policy["spec"].get("ingress", [])]
    if overlay == "cronjob":
        assert rules == []
        return
    assert rules
    for rule in rules:
        assert rule["ports"] == [{"protocol": "TCP", "port": PORT}]


# --- monitoring -----------------------------------------------------------------------------------


def test_service_monitor_scrapes_metrics() -> None:
    """The ServiceMonitor scrapes /metrics on the Service's http port."""
    monitor = one("daemon", "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_prometheus_rule_carries_the_readmes_alerts() -> None:
    """The PrometheusRule has README's two alerts, same expressions, durations and severities."""
    (group,) = one("daemon", "PrometheusRule")["spec"]["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    expiring = " ".join(rules["RotatorTokenExpiringAndFailing"]["expr"].split())
    assert "rotator_token_expiry_timestamp_seconds" in expiring
    assert "max by (target) (rotator_failing) == 1" in expiring
    assert "rotator_credential_expiry_timestamp_seconds" in rules["RotatorCredentialExpiring"]["expr"]
    readme = _readme_alert_rules()
    assert set(rules) >= {r["alert"] for r in readme}
    for documented in readme:
        ours = rules[documented["alert"]]
        assert " ".join(ours["expr"].split()) == " ".join(documented["expr"].split())
        assert ours.get("for") == documented.get("for")
        assert ours["labels"] == documented["labels"]
        assert ours.get("annotations", {}).items() >= documented.get("annotations", {}).items()


def _alerts() -> dict[str, Obj]:
    (group,) = one("daemon", "PrometheusRule")["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


def _exported_metric_names() -> set[str]:
    """Every series name a daemon's /metrics can show, read from rotator's own Metrics."""
    return {sample.name for family in every_series().registry.collect() for sample in family.samples}


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings (outside code fences) of a Markdown text."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def test_prometheus_rule_covers_expiry_drift_held_revokes_failures_and_absence() -> None:
    """One alert each: expiry while failing, drift, held revoke, failures, absence, unmanaged, stale watch."""
    exprs = {name: " ".join(rule["expr"].split()) for name, rule in _alerts().items()}
    assert "max by (target) (rotator_failing) == 1" in exprs["RotatorTokenExpiringAndFailing"]
    assert exprs["RotatorDrift"] == "max by (target) (rotator_drift) == 1"
    assert 'rotator_rotation_failures_total{reason="in_use"}[1h]' in exprs["RotatorRevokeHeld"]
    assert "increase(rotator_rotation_failures_total{" in exprs["RotatorRotationFailures"]
    assert exprs["RotatorRotationFailures"].endswith("[1h])) > 0")
    assert exprs["RotatorAbsent"].startswith('absent(up{job="rotator"}')
    assert "rotator_credential_expiry_timestamp_seconds" in exprs["RotatorCredentialExpiring"]
    unmanaged = exprs["RotatorUnmanagedTokenExpiring"]
    assert 'rotator_watched_token_expiry_timestamp_seconds{owner="unmanaged"}' in unmanaged
    assert unmanaged.startswith("max by (scope, token_id, owner) (")
    assert unmanaged.endswith("- time() < 14 * 86400")
    assert "rotator_inventory_last_success_timestamp_seconds" in exprs["RotatorInventoryStale"]


def test_every_alert_expression_uses_metrics_rotator_exports() -> None:
    """Each rotator_* name in an expression is a series the daemon exports; `up` is scraped as job rotator."""
    exported = _exported_metric_names()
    assert "rotator_rotation_failures_total" in exported  # the reading is not vacuous
    for name, rule in _alerts().items():
        used = set(re.findall(r"\brotator_\w+", rule["expr"]))
        assert used <= exported, f"{name}: {sorted(used - exported)} not exported"
    # The Prometheus Operator names the job after the Service unless the ServiceMonitor sets jobLabel.
    assert "jobLabel" not in one("daemon", "ServiceMonitor")["spec"]
    assert one("daemon", "Service")["metadata"]["name"] == "rotator"


def _unaggregated(expr: str, kinds: dict[str, tuple[str, set[str]]]) -> list[str]:
    """Each rotator_* series in ``expr`` not aggregated as several identical replicas need.

    A gauge (the same journal read by every replica) must sit directly in ``max``/``min by`` its
    own labels, so the rule sees it once per target; a counter (each process's own count) in
    ``sum by (...) (increase(``, so the replicas' counts add up.
    """
    wrong = []
    for match in re.finditer(r"\brotator_\w+", expr):
        kind, labels = kinds[match.group()]
        before = " ".join(expr[: match.start()].split())
        if kind == "gauge":
            # One replica's series looked back on (the expiry watch's, exported by whichever replica
            # took the last turn) is aggregated the same way around its max_over_time.
            before = before.removesuffix("max_over_time(").rstrip()
            # A label-free gauge (rotator_journal_up) is aggregated by plain max( or min(.
            by = re.search(r"\b(?:max|min)(?: by \(([\w, ]*)\))? ?\($", before)
            found = (
                {label.strip() for label in (by.group(1) or "").split(",") if label.strip()} if by else None
            )
            ok = found == labels
        else:
            ok = re.search(r"\bsum by \([\w, ]*\) \(increase\($", before) is not None
        if not ok:
            wrong.append(match.group())
    return wrong


def test_every_alert_aggregates_the_replicas_series() -> None:
    """Rules over several replicas' identical gauges take max/min by their labels; counters are summed."""
    kinds = {
        family.name + ("_total" if family.type == "counter" else ""): (
            family.type,
            {label for sample in family.samples for label in sample.labels if label != "le"},
        )
        for family in every_series().registry.collect()
    }
    assert kinds["rotator_drift"] == ("gauge", {"target"})
    for name, rule in _alerts().items():
        assert _unaggregated(rule["expr"], kinds) == [], name
    # The check is not vacuous: the rules as written for one replica fail it.
    assert _unaggregated("rotator_drift == 1", kinds) == ["rotator_drift"]
    assert _unaggregated("sum by (target) (rotator_failing) == 1", kinds) == ["rotator_failing"]
    assert _unaggregated("increase(rotator_rotations_total[1h]) > 0", kinds) == ["rotator_rotations_total"]
    assert _unaggregated("max(rotator_drift) == 1", kinds) == ["rotator_drift"]
    assert _unaggregated("rotator_journal_up == 0", kinds) == ["rotator_journal_up"]
    watched = "rotator_watched_token_expiry_timestamp_seconds"
    assert _unaggregated(f"max by (scope, token_id) (max_over_time({watched}[26h]))", kinds) == [watched]
    assert _unaggregated(f"max_over_time({watched}[26h]) < 1", kinds) == [watched]


def test_every_alert_links_a_runbook_that_exists() -> None:
    """Each alert's runbook_url points at a heading of docs/operations.md."""
    anchors = _github_anchors(OPERATIONS.read_text(encoding="utf-8"))
    assert "held-revoke-in_use" in anchors  # the slugs are GitHub's, backticks and parentheses dropped
    for name, rule in _alerts().items():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/operations.md"), f"{name}: {url}"
        assert anchor in anchors, f"{name}: no heading for #{anchor} in docs/operations.md"


# --- the generated ConfigMap, the image tag ------------------------------------------------------


@pytest.mark.parametrize("renderer", ["render", "fallback"])
def test_a_config_change_renames_the_config_map_and_rolls_the_pod(tmp_path: Path, renderer: str) -> None:
    """Editing rotator.yaml gives the ConfigMap a new hashed name, and the Deployment follows it."""
    copied = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copied)
    path = copied / "base" / "rotator.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("rotate_every: 7d", "rotate_every: 6d"))
    rendered = (render if renderer == "render" else render_fallback)(copied / "overlays" / "daemon")
    (changed,) = [o for o in rendered if o["kind"] == "ConfigMap"]
    (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
    name = changed["metadata"]["name"]
    assert GENERATED_CONFIG.fullmatch(name)
    assert name != config_map("daemon")["metadata"]["name"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert [v["configMap"]["name"] for v in volumes if "configMap" in v] == [name]


@pytest.mark.parametrize("name", DIRECTORIES)
def test_image_tags_are_the_package_version(name: str) -> None:
    """Every kustomization's image tag equals pyproject.toml's version, as the rendered containers show."""
    for kustomization in DIRECTORIES[name].glob("kustomization.yaml"):
        images = yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("images")
        assert images is None or [image["newTag"] for image in images] == [VERSION]
    tags = {c["image"].rsplit(":", 1)[1] for o in objects(name) for c in _containers_of(o)}
    assert tags == {VERSION}


def _containers_of(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    found: list[Obj] = template["spec"]["containers"] if template else []
    return found


# --- the example overlay --------------------------------------------------------------------------


def test_example_overlay_validates_against_the_kubernetes_schemas() -> None:
    """examples/my-overlay renders to objects that pass the strict 1.30 schemas."""
    for obj in objects(EXAMPLE):
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert kubernetes_validate.validate(obj, desired_version=SCHEMA_VERSION, strict=True)


def test_example_overlay_mounts_its_own_config(tmp_path: Path) -> None:
    """Its rotator.yaml replaces the base's, is accepted by rotator, and is what the Deployment mounts."""
    own = (DIRECTORIES[EXAMPLE] / "rotator.yaml").read_text(encoding="utf-8")
    generated = config_map(EXAMPLE)
    assert generated["data"] == {"rotator.yaml": own}
    assert generated["metadata"]["name"] != config_map("daemon")["metadata"]["name"]
    path = tmp_path / "rotator.yaml"
    path.write_text(own, encoding="utf-8")
    parsed = wiring.load(str(path), {})
    assert parsed.daemon.listen == f"0.0.0.0:{PORT}"
    assert sqlite_path(parsed.state.url, Path(CONFIG_MOUNT)).parent == Path(STATE_MOUNT)
    volumes = pod_template_of(one(EXAMPLE, "Deployment"))["spec"]["volumes"]
    assert [v["configMap"]["name"] for v in volumes if "configMap" in v] == [generated["metadata"]["name"]]


def pod_template_of(workload_object: Obj) -> Obj:
    """A Deployment's pod template."""
    template: Obj = workload_object["spec"]["template"]
    return template


def test_example_overlay_opens_egress_to_its_gitlab_on_8443() -> None:
    """The patched policy allows TCP 8443 (the config's GitLab port) and keeps DNS and 443."""
    policy = one(EXAMPLE, "NetworkPolicy")
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 8443)}
    (rule,) = [r for r in policy["spec"]["egress"] if {"protocol": "TCP", "port": 8443} in r["ports"]]
    assert rule["to"]
    assert all("ipBlock" in peer for peer in rule["to"])
    own = yaml.safe_load((DIRECTORIES[EXAMPLE] / "rotator.yaml").read_text(encoding="utf-8"))
    assert urlsplit(own["gitlab"]["url"]).port == 8443


def test_example_overlay_uses_its_own_image() -> None:
    """The image the overlay sets replaces the placeholder, tagged with the package version."""
    (each,) = pod_template_of(one(EXAMPLE, "Deployment"))["spec"]["containers"]
    assert each["image"] == f"registry.example.com/platform/rotator:{VERSION}"


# --- the guide (deploy/kubernetes/README.md) ------------------------------------------------------


def _guide() -> str:
    return (KUBERNETES / "README.md").read_text(encoding="utf-8")


def _guide_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", _guide(), re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()]


def test_guide_creates_the_namespace_then_the_secret_then_applies() -> None:
    """From a clean cluster: the namespace exists before the Secret, and the Secret before `apply -k`."""
    commands = _guide_commands()

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(commands) if fragment in line)

    namespace = first("kubectl apply -f deploy/kubernetes/base/namespace.yaml")
    secret = first("create secret generic rotator-secrets")
    assert namespace < secret < first("kubectl apply -k")
    assert f"kubectl -n {one('daemon', 'Namespace')['metadata']['name']} create secret" in commands[secret]


def test_guide_version_command_prints_the_package_version() -> None:
    """The guide's VERSION=$(...) line, run from the repository's root, gives pyproject's version."""
    (line,) = [c for c in _guide_commands() if c.startswith("VERSION=$(")]
    shell = shutil.which("sh")
    assert shell is not None
    result = subprocess.run(
        [shell, "-c", f'{line}\nprintf %s "$VERSION"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == VERSION


def test_guide_set_image_replaces_the_name_the_overlays_set() -> None:
    """`kustomize edit set image` in the guide names the image the overlays produce, not `rotator`."""
    names = {
        image["newName"]
        for overlay in OVERLAYS
        for image in yaml.safe_load(
            (DIRECTORIES[overlay] / "kustomization.yaml").read_text(encoding="utf-8")
        )["images"]
    }
    edits = [c for c in _guide_commands() if c.startswith("kustomize edit set image ")]
    assert edits
    for edit in edits:
        assert edit.removeprefix("kustomize edit set image ").split("=", 1)[0] in names


def test_guide_one_off_job_patch_turns_the_cronjob_into_the_command() -> None:
    """The guide's JSON patch, applied to the CronJob's job template, runs `status` with the same pod."""
    (patch,) = re.findall(r"-p '(\[.*?\])'", _guide())
    template = copy.deepcopy(one("cronjob", "CronJob")["spec"]["jobTemplate"])
    job = {"spec": template["spec"]}
    apply_json_patch(job, json.loads(patch))
    (each,) = job["spec"]["template"]["spec"]["containers"]
    assert each["args"] == ["--config", f"{CONFIG_MOUNT}/rotator.yaml", "status"]
    assert {k: v for k, v in each.items() if k != "args"} == {
        k: v for k, v in container("cronjob").items() if k != "args"
    }


# --- several replicas (overlays/ha) and the CronJob on PostgreSQL --------------------------------


def _ha_pod(name: str) -> Obj:
    kind = "Deployment" if name == HA else "CronJob"
    spec = one(name, kind)["spec"]
    pod: Obj = spec["template"] if name == HA else spec["jobTemplate"]["spec"]["template"]
    return pod


@pytest.mark.parametrize("name", [HA, CRON_PG])
def test_postgresql_overlays_validate_without_a_volume_and_read_the_password_from_a_secret(name: str) -> None:
    """No claim or volume; state.url is postgresql:// with no password: a mounted Secret file gives it."""
    rendered = objects(name)
    for obj in rendered:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rotator"
        assert obj["kind"] not in {"PersistentVolumeClaim", "Secret"}
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert kubernetes_validate.validate(obj, desired_version=SCHEMA_VERSION, strict=True)
    pod = _ha_pod(name)["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    (each,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in each["volumeMounts"]}
    assert STATE_MOUNT not in mounts
    token_file, env = each["env"]
    assert token_file == TOKEN_FILE_ENV
    assert env["name"] == "ROTATOR_STATE_PASSWORD_FILE"
    folder, file = env["value"].rsplit("/", 1)
    assert mounts[folder]["readOnly"] is True
    secret = volumes[mounts[folder]["name"]]["secret"]
    assert secret["secretName"] == "rotator-database"
    assert [item["path"] for item in secret["items"]] == [file]
    assert each["envFrom"] == [{"secretRef": {"name": "rotator-secrets"}}]
    (generated,) = [o for o in rendered if o["kind"] == "ConfigMap"]
    parsed = parse_config(yaml.safe_load(generated["data"]["rotator.yaml"]))
    assert urlsplit(parsed.state.url).scheme == "postgresql"
    assert urlsplit(parsed.state.url).password is None


def test_ha_runs_three_spread_replicas_updated_one_at_a_time() -> None:
    """3 replicas, RollingUpdate by one, a PDB allowing one down, spread over zones and nodes."""
    deployment = one(HA, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    labels = spec["template"]["metadata"]["labels"]
    budget = one(HA, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == labels
    spread = {c["topologyKey"]: c for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway"
    assert all(c["labelSelector"]["matchLabels"] == labels and c["maxSkew"] == 1 for c in spread.values())
    # The Service reaches every replica (any may take a trigger), and the rest is the daemon's pod.
    assert one(HA, "Service")["spec"]["selector"] == labels
    (each,) = spec["template"]["spec"]["containers"]
    daemon = container("daemon")
    same = {k: v for k, v in each.items() if k not in {"env", "volumeMounts"}}
    assert same == {k: v for k, v in daemon.items() if k not in {"env", "volumeMounts"}}
    assert each["env"][: len(daemon["env"])] == daemon["env"]  # the daemon's, then the password file
    assert {o["kind"] for o in objects(HA)} >= {"ServiceMonitor", "PrometheusRule", "NetworkPolicy"}


def test_ha_egress_adds_the_database_to_dns_and_https() -> None:
    """The replicas may reach TCP 5432 (a placeholder peer, marked), besides DNS and 443; ingress 8080."""
    pod_labels = _ha_pod(HA)["metadata"]["labels"]
    policies = [
        o
        for o in objects(HA)
        if o["kind"] == "NetworkPolicy" and _matches(o["spec"]["podSelector"]["matchLabels"], pod_labels)
    ]
    egress = [rule for p in policies for rule in p["spec"].get("egress", [])]
    ports = {(port["protocol"], port["port"]) for rule in egress for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 5432)}
    (database,) = [rule for rule in egress if rule["ports"] == [{"protocol": "TCP", "port": 5432}]]
    assert database["to"]
    assert "PLACEHOLDER" in (DIRECTORIES[HA] / "networkpolicy.yaml").read_text(encoding="utf-8")
    ingress = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert [rule["ports"] for rule in ingress] == [[{"protocol": "TCP", "port": PORT}]]


def test_cronjob_on_postgresql_coexists_with_the_replicas() -> None:
    """Same config and database as overlays/ha; every object both render is identical; one run at a time."""
    replicas = {(o["kind"], o["metadata"]["name"]): o for o in objects(HA)}
    cron = {(o["kind"], o["metadata"]["name"]): o for o in objects(CRON_PG)}
    shared = set(replicas) & set(cron)
    assert {kind for kind, _ in shared} == {"Namespace", "ConfigMap", "NetworkPolicy"}
    for key in shared:
        assert replicas[key] == cron[key], key
    spec = one(CRON_PG, "CronJob")["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec == one("cronjob", "CronJob")["spec"] | {"jobTemplate": spec["jobTemplate"]}
