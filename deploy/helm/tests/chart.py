"""Renders and lints the Airlock chart offline with the Helm SDK (helm-python-sdk).

Used by test_chart.py and, as a command, by scripts/check-deploy.sh:

    python chart.py lint                     # helm lint (strict) with each values set
    python chart.py render OUT_DIR           # one file per manifest, per values set
    python chart.py check-app-version        # Chart.yaml appVersion == Cargo.toml version
"""

from __future__ import annotations

import pathlib
import re
import sys
from typing import Any

import helm_python as helm
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE.parent / "airlock"
REPO = HERE.parents[2]
RELEASE = "airlock"
NAMESPACE = "airlock"
KUBE_VERSION = "v1.31.0"

# The values sets every check covers: the defaults, and a production-like file.
VALUES_SETS: dict[str, pathlib.Path | None] = {
    "default": None,
    "production": CHART / "ci" / "production-values.yaml",
    "dev": CHART / "ci" / "dev-values.yaml",
}


def load_values(path: pathlib.Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None = None, *, upgrade: bool = False) -> dict[str, str]:
    """Template path -> rendered text (hooks included), as `helm template` would."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values or {}))
        return chart.render(
            values or {},
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )


def documents(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object."""
    objects = []
    for path, text in sorted(render(values).items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


def lint(values: dict[str, Any] | None = None) -> list[str]:
    """Problems helm lint (strict) finds; empty when none."""
    report = helm.lint(CHART, values or {}, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)
    problems = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems + list(report.get("errors") or [])


def workspace_version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    section = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        raise SystemExit("Cargo.toml has no [workspace.package] section")
    version = re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not version:
        raise SystemExit("Cargo.toml's [workspace.package] has no version")
    return version.group(1)


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "lint":
        failed = False
        for name, path in VALUES_SETS.items():
            problems = lint(load_values(path))
            for problem in problems:
                print(f"helm lint ({name} values): {problem}", file=sys.stderr)
            failed |= bool(problems)
            print(f"helm lint ({name} values): {'FAILED' if problems else 'ok'}")
        return 1 if failed else 0
    if command == "render" and len(argv) == 3:
        out = pathlib.Path(argv[2])
        for name, path in VALUES_SETS.items():
            target = out / name
            target.mkdir(parents=True, exist_ok=True)
            count = 0
            for template, text in sorted(render(load_values(path)).items()):
                for index, doc in enumerate(d for d in yaml.safe_load_all(text) if d):
                    stem = template.replace("/", "_").removesuffix(".yaml")
                    (target / f"{stem}-{index}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
                    count += 1
            print(f"rendered {count} manifests with the {name} values into {target}")
        return 0
    if command == "check-app-version":
        chart, workspace = app_version(), workspace_version()
        if chart != workspace:
            print(
                f"deploy/helm/airlock/Chart.yaml appVersion {chart} != Cargo.toml workspace version {workspace}",
                file=sys.stderr,
            )
            return 1
        print(f"appVersion {chart} == workspace version")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
