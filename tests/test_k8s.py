"""contrib/k8s/ and the Dockerfile: rendered by kubectl kustomize, validated against Kubernetes' schemas, linted by
hadolint, and the manifests' own commands run here against a real data directory."""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from datagc.config.load import load_config
from datagc.demo import build_sample
from datagc.exitcodes import Exit
from datagc.units import parse_host_port, parse_size
from tests.helpers import DATAGC, clean_env, free_port
from tests.process_lines import PATIENCE, Running
from tests.tools import ROOT, run_tool

K8S = ROOT / "contrib" / "k8s"
KUSTOMIZATIONS = ["base", *sorted(f"overlays/{path.name}" for path in (K8S / "overlays").iterdir())]
#: the first release with native sidecars on by default, and the newest whose schemas kubernetes-validate bundles
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
ORPHAN = "posts.json.tmp.1763000000000"
Doc = dict[str, Any]


@functools.cache
def rendered(kustomization: str) -> tuple[Doc, ...]:
    result = run_tool("kubectl", "kustomize", str(K8S / kustomization))
    assert result.returncode == 0, result.stderr
    return tuple(yaml.safe_load_all(result.stdout))


def one(docs: tuple[Doc, ...], kind: str) -> Doc:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


def pod_specs(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    specs = {}
    for doc in docs:
        if doc["kind"] == "Deployment":
            specs[doc["kind"]] = doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            specs[doc["kind"]] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def sidecar(docs: tuple[Doc, ...]) -> Doc:
    [container] = pod_specs(docs)["Deployment"]["initContainers"]
    return container


def config_files(docs: tuple[Doc, ...]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap")["data"])


def env_of(container: Doc) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_kustomization_renders_and_validates(kustomization: str, version: str) -> None:
    docs = rendered(kustomization)
    core = [doc for doc in docs if not doc["apiVersion"].startswith("monitoring.coreos.com/")]

    assert {"Deployment", "CronJob", "PersistentVolumeClaim", "ConfigMap"} <= {doc["kind"] for doc in docs}
    for doc in core:
        kubernetes_validate.validate(doc, version, strict=True)  # raises with the field that is wrong


def test_the_validation_catches_a_misspelt_field() -> None:
    deployment = one(rendered("base"), "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment).replace("restartPolicy: Always", "restartPolicyy: Always"))
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicyy"):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_datagc_is_a_native_sidecar_on_the_service_data_volume() -> None:
    docs = rendered("base")
    spec = pod_specs(docs)["Deployment"]
    container = sidecar(docs)
    [service] = spec["containers"]

    assert container["restartPolicy"] == "Always"
    assert container["command"] == ["/bin/sh", "-c", "datagc audit; exec datagc watch"]
    data = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert data["data"] == {m["name"]: m["mountPath"] for m in service["volumeMounts"]}["data"]
    config_path = Path(env_of(container)["DATAGC_CONFIG"])
    assert config_path.parent.as_posix() == data["datagc-config"] and config_path.name in config_files(docs)
    assert tomllib.loads(config_files(docs)[config_path.name])["data_dir"] == data["data"]
    [port] = container["ports"]
    listen = tomllib.loads(config_files(docs)[config_path.name])["metrics"]["listen"]
    assert parse_host_port(listen) == ("0.0.0.0", port["containerPort"]) and port["name"] == "metrics"


def test_the_cronjob_runs_run_all_alone_on_the_claim() -> None:
    docs = rendered("base")
    cronjob = one(docs, "CronJob")
    spec = pod_specs(docs)["CronJob"]

    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert spec["restartPolicy"] == "Never"
    [volume] = [v for v in spec["volumes"] if v["name"] == "data"]
    assert volume["persistentVolumeClaim"]["claimName"] == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    [container] = spec["containers"]
    assert "datagc run-all;" in container["command"][-1]


def dockerfile_user() -> tuple[int, int]:
    [user] = re.findall(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    return int(user[0]), int(user[1])


@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_every_container_is_non_root_read_only_without_capabilities_and_bounded(workload: str) -> None:
    spec = pod_specs(rendered("base"))[workload]
    pod = spec["securityContext"]

    assert pod["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert (pod["runAsUser"], pod["runAsGroup"]) == dockerfile_user()
    assert pod["fsGroup"] == pod["runAsGroup"], "fsGroup gives the volume to the pod's group: no capability needed"
    for container in spec.get("initContainers", []) + spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert "runAsUser" not in context and "privileged" not in context, container["name"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert "memory" in container["resources"]["limits"], container["name"]


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes binary quantity (``10Gi``) in bytes."""
    match = re.fullmatch(r"(\d+)([KMGT]i)", quantity)
    assert match, f"use a binary quantity (Ki, Mi, Gi, Ti): {quantity}"
    return int(match.group(1)) * 1024 ** ("KMGT".index(match.group(2)[0]) + 1)


def test_the_empty_dir_size_limit_is_the_pressure_budget() -> None:
    docs = rendered("base")
    [volume] = [v for v in pod_specs(docs)["Deployment"]["volumes"] if v["name"] == "data"]
    budget = tomllib.loads(config_files(docs)["sidecar.toml"])["pressure"]["budget"]

    assert parse_size(budget) == quantity_bytes(volume["emptyDir"]["sizeLimit"])


@pytest.mark.parametrize("name", ["sidecar.toml", "cronjob.toml"])
def test_the_config_map_is_valid_datagc_configuration(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(config_files(rendered("base"))[name])

    config = load_config(env={"DATAGC_CONFIG": str(path)})

    assert config.sources["data_dir"] == f"file {path}"


# --- the manifests' commands, run here ---------------------------------------------------------


def container_env(container: Doc, tmp_path: Path, docs: tuple[Doc, ...], **overrides: str) -> dict[str, str]:
    """The container's environment, its config file written under ``tmp_path``, datagc on PATH."""
    env = env_of(container)
    config = tmp_path / Path(env["DATAGC_CONFIG"]).name
    config.write_text(config_files(docs)[config.name])
    return clean_env({**env, "DATAGC_CONFIG": str(config), **overrides,
                      "PATH": f"{Path(DATAGC).parent}{os.pathsep}{os.environ.get('PATH', '')}"})


def test_the_cronjob_command_treats_reclaiming_as_success_and_failures_as_failures(tmp_path: Path) -> None:
    docs = rendered("base")
    [container] = pod_specs(docs)["CronJob"]["containers"]
    root = tmp_path / "data"
    build_sample(root)

    def run(data_dir: Path, threshold: str = "1") -> subprocess.CompletedProcess[str]:
        env = container_env(container, tmp_path, docs, DATAGC_DATA_DIR=str(data_dir),
                            DATAGC_PRESSURE_THRESHOLD=threshold, DATAGC_PRESSURE_TARGET=threshold)
        return subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=PATIENCE,
                              check=False)

    reclaimed = run(root)
    missing = run(tmp_path / "not-mounted")
    full = run(root, threshold="0.0001")  # no disk here is that empty: evicting all it may, still above

    assert reclaimed.returncode == 0, reclaimed.stderr
    assert "exit 8" in reclaimed.stdout and not (root / ORPHAN).exists(), "swept: datagc said 8"
    assert missing.returncode == Exit.USAGE and "does not exist" in missing.stderr
    assert full.returncode & Exit.STILL_ABOVE_THRESHOLD, "32 fails the Job: " + full.stdout + full.stderr
    assert f"exit {full.returncode}" in full.stdout, "with datagc's own status"


def scrape_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return {family.name for family in text_string_to_metric_families(response.read().decode())}


def test_the_sidecar_command_audits_then_watches_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The pod's command under sh: `exec` must hand SIGTERM to watch itself (the kubelet signals PID 1)."""
    docs = rendered("base")
    container = sidecar(docs)
    root = tmp_path / "data"
    build_sample(root)
    port = free_port()
    env = container_env(container, tmp_path, docs, DATAGC_DATA_DIR=str(root), DATAGC_WATCH_INITIAL_DELAY="0",
                        DATAGC_METRICS_LISTEN=f"127.0.0.1:{port}")
    pod = Running(container["command"], env)
    try:
        pod.wait_for(pod.out, "[janitor] run-all: ")
        deadline = time.monotonic() + PATIENCE  # the pass is published just after its summary line
        while not (served := scrape_names(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        code = pod.stop(signal.SIGTERM)
    finally:
        pod.close()

    assert code == 0, pod.err
    first_audit = next(i for i, line in enumerate(pod.out) if line.startswith("[disk-audit] total="))
    assert first_audit < next(i for i, line in enumerate(pod.out) if line.startswith("[janitor] watch: first pass"))
    assert pod.out[-1] == "[janitor] watch: stopped by SIGTERM"
    assert "datagc_last_success_timestamp_seconds" in served
    assert not (root / ORPHAN).exists()


# --- the overlays --------------------------------------------------------------------------------


def test_the_scrape_annotations_point_at_the_sidecar_metrics_port() -> None:
    docs = rendered("overlays/scrape-annotations")
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    [port] = sidecar(docs)["ports"]

    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port["containerPort"]),
                           "prometheus.io/path": "/metrics"}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_the_service_monitor_reaches_the_sidecar_through_the_service() -> None:
    """CRDs have no bundled schema: the chain ServiceMonitor -> Service -> pod -> port is checked by hand."""
    docs = rendered("overlays/prometheus-operator")
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    pod = one(docs, "Deployment")["spec"]["template"]
    [endpoint] = monitor["spec"]["endpoints"]
    [service_port] = service["spec"]["ports"]
    [container_port] = sidecar(docs)["ports"]

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert matches(service["spec"]["selector"], pod["metadata"]["labels"])
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    assert service_port["targetPort"] == container_port["name"]
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels"}


def test_the_prometheus_rule_holds_the_same_rules_as_contrib_prometheus() -> None:
    rule = one(rendered("overlays/prometheus-operator"), "PrometheusRule")
    rules_file = yaml.safe_load((ROOT / "contrib" / "prometheus" / "datagc.rules.yml").read_text())

    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == rules_file["groups"]


# --- the Dockerfile ------------------------------------------------------------------------------


def test_hadolint_passes_without_exceptions() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    result = run_tool("hadolint", "--no-color", "--failure-threshold", "style", str(ROOT / "Dockerfile"))

    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    assert "hadolint ignore" not in dockerfile


def test_the_image_runs_datagc_as_a_numeric_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.findall(r"^ENTRYPOINT (.*)$", dockerfile, re.M) == ['["datagc"]']
    assert dockerfile_user()[0] != 0
    assert re.search(r"^FROM python:3\.1[1-9]-slim", dockerfile, re.M)


def test_the_build_context_holds_what_pip_install_needs(tmp_path: Path) -> None:
    """Only what .dockerignore lets through is copied; a wheel built from just that has the package and its data."""
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    sources = [word for line in re.findall(r"^COPY (.*)$", (ROOT / "Dockerfile").read_text(), re.M)
               for word in line.split()[:-1]]
    context = tmp_path / "context"
    for source in sources:
        assert (ROOT / source).exists(), source
        allowed = any(rule == f"!{source}" or rule == f"!{source}/" for rule in ignore)
        assert allowed and ignore[0] == "*", f"{source} is not let through by .dockerignore"
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, context / source,
                            ignore=lambda _, names: [n for n in names if fnmatch.fnmatch(n, "__pycache__")])
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(ROOT / source, context / source)
    result = subprocess.run([str(Path(DATAGC).with_name("pip")), "wheel", "--no-deps", "--no-build-isolation",
                             "--quiet", "--wheel-dir", str(tmp_path / "wheels"), str(context)],
                            capture_output=True, text=True, timeout=PATIENCE * 4, check=False)

    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "wheels").glob("datagc-*.whl")
    listing = subprocess.run(["python3", "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True,
                             check=True).stdout
    assert "datagc/cli.py" in listing and "datagc/sample/posts.json" in listing and "entry_points.txt" in listing
