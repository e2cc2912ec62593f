"""A bake's production files: valid offline, linted, and agreeing with each other.

Every Kubernetes manifest validates against the schemas that kubernetes-validate ships (no
cluster, no network); hadolint passes on the Dockerfile; bandit passes on the generated code. The
numbers that must agree across files (user id, port, probe paths, the shutdown timeline) agree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import BIN, bake_project, run

# The oldest Kubernetes the manifests promise to work with (docs/deployment.md), and the newest.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
MANIFESTS = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")
BASE = Path("deploy", "k8s", "base")  # the service's own manifests; `deploy/k8s` includes them
PREFIX = "POOL_SERVICE_"  # the default bake's settings prefix
# Asserts in the generated code narrow types for mypy and never guard input (ruff's S101 is
# off in the generated project for the same reason); every other bandit test stays on.
BANDIT_SKIPS = "B101"


@pytest.fixture(scope="module")
def project(cookies_session: Any) -> Path:
    return bake_project(cookies_session)


@pytest.fixture(scope="module")
def without_containers(cookies_session: Any) -> Path:
    return bake_project(cookies_session, include_docker="no", include_k8s="no")


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def container(project: Path) -> dict[str, Any]:
    deployment = load(project / BASE / "deployment.yaml")
    found: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return found


def environment(project: Path) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(project)["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", MANIFESTS)
def test_manifest_validates_against_kubernetes_schema(
    project: Path, manifest: str, version: str
) -> None:
    documents = list(yaml.safe_load_all((project / BASE / manifest).read_text()))
    assert documents
    for document in documents:
        # strict: an unknown field (a typo such as readOnlyRootFileSystem) fails too
        kubernetes_validate.validate(document, version, strict=True)


def test_kustomization_applies_every_manifest(project: Path) -> None:
    k8s = project / BASE
    kustomization = load(k8s / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)
    assert sorted(p.name for p in k8s.glob("*.yaml")) == sorted([*MANIFESTS, "kustomization.yaml"])
    assert [image["name"] for image in kustomization["images"]] == [container(project)["image"]]


def test_service_pdb_and_hpa_target_the_deployment(project: Path) -> None:
    k8s = project / BASE
    deployment = load(k8s / "deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == pod_labels
    assert load(k8s / "service.yaml")["spec"]["selector"] == pod_labels
    assert load(k8s / "pdb.yaml")["spec"]["selector"]["matchLabels"] == pod_labels
    target = load(k8s / "hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    port_names = {port["name"] for port in container(project)["ports"]}
    assert {p["targetPort"] for p in load(k8s / "service.yaml")["spec"]["ports"]} <= port_names


def test_probes_use_the_service_health_routes(project: Path) -> None:
    spec = container(project)
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_termination_grace_outlasts_the_whole_drain(project: Path) -> None:
    """preStop pause, then in-flight requests, then the downstream clients, each up to the grace."""
    pod = load(project / BASE / "deployment.yaml")["spec"]["template"]["spec"]
    pre_stop = container(project)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(environment(project)[f"{PREFIX}SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + 2 * drain


def test_pod_runs_the_image_as_built(project: Path) -> None:
    """Same non-root user and port in the Dockerfile and the Deployment; root stays read-only."""
    dockerfile = (project / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    exposed = re.search(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)
    assert user is not None and exposed is not None
    pod = load(project / BASE / "deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user[1])
    spec = container(project)
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["ports"][0]["containerPort"] == int(exposed[1])
    assert environment(project)[f"{PREFIX}PORT"] == exposed[1]
    assert "/tmp" in {mount["mountPath"] for mount in spec["volumeMounts"]}


def test_hadolint_passes_on_the_dockerfile(project: Path) -> None:
    run([str(BIN / "hadolint"), "--config", ".hadolint.yaml", "Dockerfile"], project)


def test_bandit_passes_on_the_generated_code(project: Path) -> None:
    run([str(BIN / "bandit"), "--quiet", "--skip", BANDIT_SKIPS, "--recursive", "src"], project)


def test_dependabot_config_is_valid_and_covers_each_ecosystem(project: Path) -> None:
    config = project / ".github" / "dependabot.yml"
    run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(config)],
        project,
    )
    ecosystems = [update["package-ecosystem"] for update in load(config)["updates"]]
    assert ecosystems == ["uv", "github-actions", "docker"]


def test_without_containers_nothing_refers_to_an_image(without_containers: Path) -> None:
    config = without_containers / ".github" / "dependabot.yml"
    ecosystems = [update["package-ecosystem"] for update in load(config)["updates"]]
    assert ecosystems == ["uv", "github-actions"]
    workflows = sorted(p.name for p in (without_containers / ".github" / "workflows").iterdir())
    assert "docker.yml" not in workflows
    for absent in ("Dockerfile", ".dockerignore", ".hadolint.yaml", "deploy"):
        assert not (without_containers / absent).exists(), absent
