"""deploy/kubernetes/: every manifest is valid against the Kubernetes schemas, offline (the schemas
ship in the kubernetes-validate wheel), and keeps the invariants the cluster relies on: one beat,
the web probes, secrets from Secrets only, every setting one PGI reads, pinned images, non-root."""

import copy
import re
import socket
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .manifests import (
    MANIFESTS,
    ROOT,
    SECRET_EXAMPLE,
    SECRET_NAME,
    SECRET_VALUE,
    all_containers,
    config_map,
    containers,
    dockerfile_env,
    documents,
    environment_set,
    manifest_files,
    named,
    of_kind,
    pod_specs,
    resources,
    secret_refs,
    settings_read,
)

# The oldest Kubernetes minor version the manifests must still work on, and the newest the wheel knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
REQUIRED_SECRETS = {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
WEB_SECRETS = {"PGI_HEALTH_TOKEN", "PGI_METRICS_TOKEN"}
PGI_CONTAINERS = ("web", "worker", "beat", "relay", "consumer", "migrate")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Validation must not fetch a schema: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def manifest_cases():
    return [
        pytest.param(doc, version, id=f"{path.relative_to(MANIFESTS)}:{doc['kind']}/{doc['metadata']['name']}@{version}")
        for path in manifest_files()
        for doc in documents(path)
        for version in KUBERNETES_VERSIONS
    ]


@pytest.mark.parametrize(("doc", "version"), manifest_cases())
def test_every_manifest_is_valid_against_the_kubernetes_schema(doc, version):
    # strict: a misspelt field (`httpHeader`) is an error, not silently ignored.
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_refuses_a_broken_manifest():
    deployment = copy.deepcopy(named("Deployment", "pgi-web"))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["paths"] = probe["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(named("Deployment", "pgi-beat"))
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1])


def test_kustomization_applies_every_manifest_but_the_example_secret():
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    top_level = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(top_level)
    assert all(doc["kind"] != "Secret" for doc in resources())


def test_exactly_one_beat_and_nothing_scales_it():
    beats = [
        workload
        for workload, spec in pod_specs().items()
        for container in containers(spec)
        if "beat" in container.get("command", []) + container.get("args", []) or "-B" in container.get("command", [])
    ]
    assert beats == ["Deployment/pgi-beat"]
    beat = named("Deployment", "pgi-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}  # never two during a rollout
    assert all(hpa["spec"]["scaleTargetRef"]["name"] != "pgi-beat" for hpa in of_kind("HorizontalPodAutoscaler"))


def test_every_pgi_process_runs_with_its_command():
    commands = {
        workload.split("/")[1]: containers(spec, init=False)[0]["command"] for workload, spec in pod_specs().items()
    }
    assert commands["pgi-web"][:3] == ["gunicorn", "-c", "gunicorn.conf.py"] and commands["pgi-web"][-1] == "pgi.wsgi"
    assert commands["pgi-worker"][:4] == ["celery", "-A", "pgi", "worker"]
    assert commands["pgi-relay"] == ["python", "manage.py", "relay_events"]
    assert commands["pgi-consumer"] == ["python", "manage.py", "consume_payment_requests"]
    assert commands["pgi-migrate"] == ["python", "manage.py", "migrate", "--noinput"]
    assert (ROOT / "pgi/events/management/commands/relay_events.py").exists()
    assert (ROOT / "payment_requests/management/commands/consume_payment_requests.py").exists()
    assert named("Job", "pgi-migrate")["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_web_probes_readiness_and_liveness_on_their_paths():
    [web] = containers(pod_specs()["Deployment/pgi-web"], init=False)
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    allowed_hosts = config_map()["DJANGO_ALLOWED_HOSTS"].split(",")
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = web[kind]["httpGet"]
        assert probe["port"] in ports
        headers = {header["name"]: header["value"] for header in probe.get("httpHeaders", [])}
        # Django refuses a Host outside ALLOWED_HOSTS (400), and PGI_HTTPS redirects plain HTTP.
        assert headers.get("Host") in allowed_hosts
        assert config_map()["PGI_HTTPS"] != "true" or headers.get("X-Forwarded-Proto") == "https"


def test_web_scales_and_keeps_a_pod_through_disruptions():
    web = named("Deployment", "pgi-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    [hpa] = [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "pgi-web"]
    assert hpa["spec"]["minReplicas"] >= 2
    [pdb] = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = named("Service", "pgi-web")
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {port["name"] for port in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_deployment_selectors_match_their_pods():
    for deployment in of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in of_kind("Deployment")]
    assert len(set(selectors)) == len(selectors), "two Deployments select the same pods"


def test_every_secret_looking_variable_comes_from_the_secret():
    for where, container in all_containers():
        for env in container.get("env", []):
            if SECRET_NAME.search(env["name"]):
                assert "value" not in env, f"{where}: {env['name']} is written in the manifest"
                assert env["valueFrom"]["secretKeyRef"]["name"] == "pgi-secrets", where
            else:
                assert not SECRET_VALUE.search(str(env.get("value", ""))), f"{where}: {env['name']}"
        for source in container.get("envFrom", []):
            assert source == {"configMapRef": {"name": "pgi-config"}}, where


def test_no_secret_in_any_config_map():
    for config in of_kind("ConfigMap"):
        for key, value in config["data"].items():
            assert not SECRET_NAME.search(key), f"{config['metadata']['name']}: {key}"
            assert not SECRET_VALUE.search(value), f"{config['metadata']['name']}: {key}"


def test_the_secret_helpers_catch_what_they_must():
    assert all(SECRET_NAME.search(n) for n in ("DJANGO_SECRET_KEY", "DATABASE_URL", "PGI_ADYEN_HMAC_KEY", "PGI_HEALTH_TOKEN"))
    assert SECRET_NAME.search("DJANGO_SECRET_KEY_FALLBACKS") and SECRET_NAME.search("PGI_ADYEN_WEBHOOK_USERNAME")
    not_secrets = ("DJANGO_ALLOWED_HOSTS", "PGI_PAYMENT_REQUESTS_KEY_NAME", "PGI_API_KEY_ROTATION_GRACE_HOURS")
    assert not any(SECRET_NAME.search(n) for n in not_secrets)
    assert SECRET_VALUE.search("postgres://pgi:hunter2@db:5432/pgi")
    assert SECRET_VALUE.search("sk_live_abc") and SECRET_VALUE.search("whsec_abc")
    assert not SECRET_VALUE.search("postgres://db:5432/pgi") and not SECRET_VALUE.search("https://payments.example.com")


def test_every_process_gets_every_secret_setting_and_the_required_ones_are_not_optional():
    secret_settings = {name for name in settings_read() if SECRET_NAME.search(name)}
    for workload, spec in pod_specs().items():
        [container] = containers(spec, init=False)
        assert container["name"] in PGI_CONTAINERS
        refs = secret_refs(container)
        # The same gateways in every process: a refund sent by the worker needs the keys web used.
        # Monitoring's tokens only where they are checked.
        expected = (secret_settings - WEB_SECRETS) | (WEB_SECRETS if container["name"] == "web" else set())
        assert set(refs) == expected, workload
        required = REQUIRED_SECRETS | (WEB_SECRETS if container["name"] == "web" else set())
        for name in required:
            assert name in refs and not refs[name].get("optional", False), f"{workload}: {name}"
        assert all(ref["key"] == name for name, ref in refs.items()), workload
        for init in spec.get("initContainers", []):
            init_refs = secret_refs(init)
            assert REQUIRED_SECRETS <= set(init_refs) and not any(r.get("optional") for r in init_refs.values())


def test_the_example_secret_names_every_key_the_pods_read():
    [secret] = documents(SECRET_EXAMPLE)
    keys_read = {ref["key"] for _, container in all_containers() for ref in secret_refs(container).values()}
    assert set(secret["stringData"]) == keys_read
    assert {ref["name"] for _, c in all_containers() for ref in secret_refs(c).values()} == {secret["metadata"]["name"]}
    # Placeholders only: nothing that could be a working credential.
    assert all("<" in value for value in secret["stringData"].values())


def test_every_variable_the_manifests_set_is_a_setting_pgi_reads():
    known = settings_read() | dockerfile_env()
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "WEB_CONCURRENCY"} <= known  # the scan itself works
    assert environment_set() - known == set()


def test_images_are_pinned_and_the_same_for_every_process():
    images = {container["image"] for _, container in all_containers()}
    assert len(images) == 1, images
    [image] = images
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest" and "/" not in tag
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert all(entry.get("newTag", "") not in {"", "latest"} for entry in kustomization.get("images", []))


def test_every_pod_runs_non_root_with_a_read_only_root_and_bounded_resources():
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "the Dockerfile's USER must be numeric for runAsNonRoot"
    for workload, spec in pod_specs().items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault", workload
        assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user[1]), int(user[2])), workload
        assert spec["automountServiceAccountToken"] is False, workload
        volumes = {volume["name"] for volume in spec.get("volumes", [])}
        for container in containers(spec):
            where = f"{workload}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            mounts = {mount["name"]: mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert set(mounts) <= volumes, where
            assert mounts.get("tmp") == "/tmp", f"{where}: nothing writable for temporary files"


def test_the_directories_pgi_writes_to_are_mounted_volumes():
    [web] = containers(pod_specs()["Deployment/pgi-web"], init=False)
    values = {env["name"]: env.get("value") for env in web["env"]}
    assert Path(values["PROMETHEUS_MULTIPROC_DIR"]).is_relative_to("/tmp")  # /metrics' files (gunicorn.conf.py)


def test_the_reconciliation_inbox_is_on_the_workers_volume():
    inbox = Path(config_map()["PGI_RECONCILIATION_INBOX_DIR"])
    [worker] = containers(pod_specs()["Deployment/pgi-worker"], init=False)
    mounts = [Path(mount["mountPath"]) for mount in worker["volumeMounts"] if mount["name"] == "reconciliation"]
    assert any(inbox.is_relative_to(mount) for mount in mounts)
    claim = named("PersistentVolumeClaim", "pgi-reconciliation")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]  # every worker replica mounts it
