"""The Kubernetes manifests (deploy/kubernetes): rendered, schema-checked offline, held to rotator's needs.

Each overlay is rendered with `kubectl kustomize` when kubectl is installed, else with the small
renderer in tests/kustomize.py, which handles exactly what the kustomizations use and refuses
anything else; when kubectl is there, both renderings must agree.
"""

import copy
import re
import shutil
import subprocess
import tomllib

from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from rotator.doors import wiring
from rotator.doors.config import Config, parse_config
from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.journal.sqlite import sqlite_path
from tests.kustomize import Obj, render, render_fallback, render_kubectl


ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("daemon", "cronjob")
EXAMPLE = "my-overlay"  # the documented "your overlay" example, on top of overlays/daemon
DIRECTORIES = {
    "daemon": KUBERNETES / "overlays" / "daemon",
    "cronjob": KUBERNETES / "overlays" / "cronjob",
    EXAMPLE: KUBERNETES / "examples" / EXAMPLE,
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
    "ROTATOR_INFISICAL_CLIENT_ID",
    "ROTATOR_INFISICAL_CLIENT_SECRET",
    "ROTATOR_API_TOKEN",
    "ROTATOR_WEBHOOK_URL",
}
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
        ("ServiceAccount", "rotator"),
        ("ConfigMap", "rotator-config-HASH"),
        ("PersistentVolumeClaim", "rotator-state"),
        ("NetworkPolicy", "rotator"),
    }
    daemon = {
        ("Deployment", "rotator"),
        ("Service", "rotator"),
        ("NetworkPolicy", "rotator-http"),
        ("ServiceMonitor", "rotator"),
        ("PrometheusRule", "rotator"),
    }
    kinds = {
        o: sorted((x["kind"], GENERATED_CONFIG.sub("rotator-config-HASH", x["metadata"]["name"])) for x in objects(o))
        for o in OVERLAYS
    }
    assert kinds["daemon"] == sorted(base | daemon)
    assert kinds["cronjob"] == sorted(base | {("CronJob", "rotator")})


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
    account = one(overlay, "ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


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
    assert set(mounts) == {CONFIG_MOUNT, STATE_MOUNT, TMP_MOUNT}
    assert mounts[CONFIG_MOUNT]["readOnly"] is True
    assert volumes[mounts[CONFIG_MOUNT]["name"]]["configMap"]["name"] == config_map(overlay)["metadata"]["name"]
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
    assert "env" not in each


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
    expiring = rules["RotatorTokenExpiringAndFailing"]["expr"]
    assert "rotator_token_expiry_timestamp_seconds" in expiring
    assert "rotator_failing == 1" in expiring
    assert "rotator_credential_expiry_timestamp_seconds" in rules["RotatorCredentialExpiring"]["expr"]
    readme = _readme_alert_rules()
    assert set(rules) >= {r["alert"] for r in readme}
    for documented in readme:
        ours = rules[documented["alert"]]
        assert " ".join(ours["expr"].split()) == " ".join(documented["expr"].split())
        assert ours.get("for") == documented.get("for")
        assert ours["labels"] == documented["labels"]
        assert ours.get("annotations", {}).items() >= documented.get("annotations", {}).items()
