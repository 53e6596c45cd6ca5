"""Reading deploy/kubernetes/ and the settings PGI reads, for the deployment tests."""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
SECRET_EXAMPLE = MANIFESTS / "examples" / "pgi-secrets.yaml"
# Python files whose environment variables configure a PGI process.
SETTINGS_SOURCES = (ROOT / "pgi" / "settings.py", ROOT / "gunicorn.conf.py")
# A name that holds a credential: its value must come from a Secret, never a ConfigMap or the manifest.
# By its ending, so that PGI_API_KEY_ROTATION_GRACE_HOURS (a duration) is not one.
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY|USERNAME|SECRET_KEY_FALLBACKS|(DATABASE|REDIS|BROKER)_URL)$")
# A value that looks like a credential whatever its name: a URL with a password, a gateway's key.
SECRET_VALUE = re.compile(r"://[^/@\s]*:[^/@\s]+@|\b(sk|rk)_(live|test)_|\bwhsec_|\bpgi_[0-9a-f]{12}_")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest, the example Secret included; not kustomization.yaml."""
    return sorted(p for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> list[dict]:
    """The resources `kubectl apply -k deploy/kubernetes` creates (not the example Secret)."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in documents(MANIFESTS / name)]


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in resources() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict:
    [found] = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    return found


def pod_specs() -> dict[str, dict]:
    """The pod template of every workload, by `<Kind>/<name>`."""
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]["spec"]
        for doc in resources()
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    }


def containers(spec: dict, *, init: bool = True) -> list[dict]:
    return list(spec["containers"]) + (list(spec.get("initContainers", [])) if init else [])


def all_containers() -> list[tuple[str, dict]]:
    return [(f"{workload}/{c['name']}", c) for workload, spec in pod_specs().items() for c in containers(spec)]


def secret_refs(container: dict) -> dict[str, dict]:
    """Environment variable name → its secretKeyRef."""
    return {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


def config_map() -> dict[str, str]:
    return named("ConfigMap", "pgi-config")["data"]


def environment_set() -> set[str]:
    """Every environment variable the manifests give a PGI process: the ConfigMap's and each env entry."""
    names = set(config_map())
    for _, container in all_containers():
        names |= {env["name"] for env in container.get("env", [])}
    return names


def settings_read() -> set[str]:
    """Every environment variable pgi/settings.py and gunicorn.conf.py read: os.environ.get("X"),
    os.environ.setdefault("X", …), os.environ["X"], env_bool("X", …), env_list("X", …)."""
    names = set()
    for path in SETTINGS_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                called = ast.unparse(node.func)
                if called in {"os.environ.get", "os.environ.setdefault", "env_bool", "env_list"}:
                    names.add(node.args[0].value)
            elif (
                isinstance(node, ast.Subscript)
                and ast.unparse(node.value) == "os.environ"
                and isinstance(node.slice, ast.Constant)
            ):
                names.add(node.slice.value)
    return names


def dockerfile_env() -> set[str]:
    """Names the image's Dockerfile sets with ENV (read by the processes too)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return {name for line in text.splitlines() if line.startswith("ENV ") for name in re.findall(r"(\w+)=", line)}
