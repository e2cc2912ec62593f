"""deploy/k8s/loadtest: renders offline, validates, and its pieces agree with each other.

The overlay is rendered as ``kubectl kustomize`` would (``tests/kustomize.py``) and every object
is validated strictly against the same Kubernetes schemas as the service's manifests. Then the
references between the fault server, the service under test, the locust master and its workers
are checked: names, labels, selectors, ports, the environment that wires them together.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from tests.conftest import bake_project
from tests.kustomize import KustomizeError, build, pod_specs
from tests.test_deploy import KUBERNETES_VERSIONS

Object = dict[str, Any]
SLUG, PREFIX = "pool-service", "POOL_SERVICE_"
NAMESPACE = f"{SLUG}-loadtest"


@pytest.fixture(scope="module")
def project(cookies_session: Any) -> Path:
    return bake_project(cookies_session)


@pytest.fixture(scope="module")
def rendered(project: Path) -> list[Object]:
    return build(project / "deploy" / "k8s" / "loadtest")


def one(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [(o["kind"], o["metadata"]["name"]) for o in objects])
    return found[0]


def config_map(objects: list[Object], name: str) -> Object:
    """A generated ConfigMap, by the name before its hash suffix."""
    found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    found += [
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and re.fullmatch(rf"{name}-[0-9a-f]{{10}}", o["metadata"]["name"])
    ]
    assert len(found) == 1, name
    return found[0]


def container(obj: Object) -> Object:
    spec: Object = obj["spec"]["template"]["spec"]["containers"][0]
    return spec


def env_of(objects: list[Object], obj: Object) -> dict[str, str]:
    """A container's environment as the kubelet assembles it: envFrom first, then env."""
    spec = container(obj)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is not None:
            env.update(next(o for o in objects if o["metadata"]["name"] == ref["name"])["data"])
    env.update({item["name"]: item["value"] for item in spec.get("env", [])})
    return env


def labels(obj: Object) -> dict[str, str]:
    pod_labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return pod_labels


def port(service: Object, name: str) -> int:
    number: int = next(p["port"] for p in service["spec"]["ports"] if p["name"] == name)
    return number


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates(rendered: list[Object], version: str) -> None:
    kinds = sorted({o["kind"] for o in rendered})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_service_manifests_render_and_validate(project: Path, version: str) -> None:
    objects = build(project / "deploy" / "k8s")
    assert sorted(o["kind"] for o in objects) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_everything_is_in_its_own_namespace(rendered: list[Object]) -> None:
    assert one(rendered, "Namespace", NAMESPACE)
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


def test_the_service_under_test_is_the_base_with_the_fault_server(
    project: Path, rendered: list[Object]
) -> None:
    """Not a copy: the base's Deployment, in the namespace, with its ConfigMap replaced."""
    base = one(build(project / "deploy" / "k8s" / "base"), "Deployment", SLUG)
    service = one(rendered, "Deployment", SLUG)
    assert container(service)["image"] == container(base)["image"]
    assert container(service)["env"] == container(base)["env"]
    hpa = one(rendered, "HorizontalPodAutoscaler", SLUG)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 1)  # the gate reads one pod
    fault = one(rendered, "Service", "fault-server")
    urls = {k: v for k, v in env_of(rendered, service).items() if k.endswith("__BASE_URL")}
    assert urls, "no downstream configured"
    for variable, url in urls.items():
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("fault-server", port(fault, "data")), variable


def test_the_service_gets_the_profiles_settings(project: Path, rendered: list[Object]) -> None:
    """service.env is what `make loadtest` gives the service for that profile, every downstream
    included: the SLO limits of the gate assume exactly these settings."""
    profile = config_map(rendered, "locust")["data"]["LOADTEST_PROFILE"]
    fault = one(rendered, "Service", "fault-server")
    command = [sys.executable, "-m", "loadtest", "--print-service-env", "--profile", profile]
    command += ["--fault-port", str(port(fault, "data"))]
    printed = subprocess.run(
        command,
        cwd=project,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "POOL_"))},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = dict(
        line.replace("http://127.0.0.1:", "http://fault-server:").split("=", 1)
        for line in printed.splitlines()
    )
    assert config_map(rendered, f"{SLUG}-downstreams")["data"] == expected


def test_fault_server_ports_agree(rendered: list[Object]) -> None:
    deployment = one(rendered, "Deployment", "fault-server")
    service = one(rendered, "Service", "fault-server")
    assert service["spec"]["selector"] == labels(deployment)
    assert deployment["spec"]["selector"]["matchLabels"] == labels(deployment)
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    env = env_of(rendered, deployment)
    assert ports == {"data": int(env["FAULT_PORT"]), "admin": int(env["FAULT_ADMIN_PORT"])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    args = container(deployment)["args"]
    for variable in ("FAULT_HOST", "FAULT_PORT", "FAULT_ADMIN_PORT"):
        assert f"$({variable})" in args


def test_master_and_workers_find_each_other_and_the_targets(rendered: list[Object]) -> None:
    job, workers = (
        one(rendered, "Job", "locust-master"),
        one(rendered, "Deployment", "locust-worker"),
    )
    master_service = one(rendered, "Service", "locust-master")
    master, worker = env_of(rendered, job), env_of(rendered, workers)
    assert master_service["spec"]["selector"] == labels(job)
    assert workers["spec"]["selector"]["matchLabels"] == labels(workers)
    assert worker["LOCUST_MASTER_NODE_HOST"] == master_service["metadata"]["name"]
    master_port = port(master_service, "master")
    assert int(worker["LOCUST_MASTER_NODE_PORT"]) == master_port
    assert int(master["LOCUST_MASTER_BIND_PORT"]) == master_port
    assert [p["containerPort"] for p in container(job)["ports"]] == [master_port]
    # the one knob: the master waits for as many workers as the Deployment runs
    assert int(master["LOCUST_EXPECT_WORKERS"]) == workers["spec"]["replicas"]
    assert master["LOCUST_LOCUSTFILE"] == worker["LOCUST_LOCUSTFILE"]
    assert master["LOADTEST_PROFILE"] == worker["LOADTEST_PROFILE"] in ("quick", "default")
    assert container(job)["image"] == container(workers)["image"]
    # the targets: the service's Service, the fault server's admin port
    service = one(rendered, "Service", SLUG)
    assert master["LOCUST_HOST"] == f"http://{SLUG}:{port(service, 'http')}"
    admin = urlsplit(master["LOADTEST_FAULT_ADMIN"])
    assert (admin.hostname, admin.port) == (
        "fault-server",
        port(one(rendered, "Service", "fault-server"), "admin"),
    )
    # the reports land on a volume
    mounts = {m["mountPath"] for m in container(job)["volumeMounts"]}
    assert master["LOADTEST_REPORT_DIR"] in mounts
    for variable in ("LOCUST_CSV", "LOCUST_HTML"):
        assert Path(master[variable]).parent == Path(master["LOADTEST_REPORT_DIR"])
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_only_the_master_reaches_the_admin_port(rendered: list[Object]) -> None:
    policy = one(rendered, "NetworkPolicy", "fault-server")["spec"]
    fault = one(rendered, "Deployment", "fault-server")
    assert policy["podSelector"]["matchLabels"] == labels(fault)
    assert policy["policyTypes"] == ["Ingress"]
    allowed = {
        rule["ports"][0]["port"]: [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
        for rule in policy["ingress"]
    }
    assert allowed == {
        "data": [labels(one(rendered, "Deployment", SLUG))],
        "admin": [labels(one(rendered, "Job", "locust-master"))],
    }
    assert all(len(rule["ports"]) == 1 for rule in policy["ingress"])


def test_every_pod_runs_locked_down(project: Path, rendered: list[Object]) -> None:
    """As the service's own pod: non-root as the image's user, read-only root, no capability,
    requests and a memory limit; the load-test pods run the Dockerfile's loadtest target."""
    user = re.search(r"^USER (\d+):", (project / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None
    for pod in pod_specs(rendered):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(user[1])
        assert pod["automountServiceAccountToken"] is False
        for spec in pod["containers"]:
            assert spec["securityContext"]["readOnlyRootFilesystem"] is True
            assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
            assert "memory" in spec["resources"]["limits"]
            assert "/tmp" in {m["mountPath"] for m in spec["volumeMounts"]}
    loadtest_image = f"ghcr.io/your-org/{SLUG}:0.1.0-loadtest"
    for name, kind in (("fault-server", "Deployment"), ("locust-worker", "Deployment")):
        assert container(one(rendered, kind, name))["image"] == loadtest_image
    assert container(one(rendered, "Job", "locust-master"))["image"] == loadtest_image
    assert container(one(rendered, "Deployment", SLUG))["image"] == f"ghcr.io/your-org/{SLUG}:0.1.0"


def test_one_dockerfile_two_images(project: Path) -> None:
    """The service image is the default (last) target and never sees loadtest/."""
    dockerfile = (project / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE)
    assert stages[-1] == "runtime" and "loadtest" in stages
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "loadtest" not in runtime
    assert "!loadtest/" in (project / ".dockerignore").read_text()


def test_the_renderer_refuses_what_kustomize_refuses(tmp_path: Path) -> None:
    """An overlay inside its base's directory is a cycle for kustomize v5: so here too."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    (overlay / "kustomization.yaml").write_text("resources:\n  - ..\n")
    with pytest.raises(KustomizeError, match="cycle"):
        build(overlay)
    (overlay / "kustomization.yaml").write_text("commonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="commonLabels"):
        build(overlay)
