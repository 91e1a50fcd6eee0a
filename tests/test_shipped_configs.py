"""Every Collector and Jaeger config the repo ships passes the Jaeger binary's own check, alone and
with each overlay it is documented with, and docker-compose.yml runs them as they are.

The binary is the one the end-to-end tests run (``scripts/build-jaeger``); ``jaeger validate``
decodes every field of every component without starting any, so a typo, a component the binary
lacks or a field of the wrong type fails here, not on a user's machine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .e2e.stack import ROOT, clean_environ, find_jaeger

DEPLOY = ROOT / "deploy"
STORAGE = sorted((DEPLOY / "storage").glob("*.yaml"))

#: (id, the config files merged in order): each shipped config, and each documented combination.
CONFIGS = [
    ("otel-collector", [ROOT / "otel-collector.yaml"]),
    ("otel-collector+tail-sampling", [ROOT / "otel-collector.yaml", DEPLOY / "tail-sampling.yaml"]),
    ("jaeger", [DEPLOY / "jaeger.yaml"]),
    ("collector-agent", [DEPLOY / "collector-agent.yaml"]),
    ("jaeger-ingester", [DEPLOY / "jaeger-ingester.yaml"]),
    *((f"jaeger+{path.stem}", [DEPLOY / "jaeger.yaml", path]) for path in STORAGE),
    *((f"jaeger-ingester+{path.stem}", [DEPLOY / "jaeger-ingester.yaml", path]) for path in STORAGE),
]


@pytest.fixture(scope="module")
def jaeger() -> str:
    binary, why_not = find_jaeger()
    if binary is None:
        pytest.skip(why_not)
    return binary


def run(jaeger: str, command: str, configs: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([jaeger, command, *(f"--config=file:{path}" for path in configs)],
                          env=clean_environ(), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("configs", [c for _, c in CONFIGS], ids=[name for name, _ in CONFIGS])
def test_each_shipped_config_passes_jaegers_own_check(jaeger, configs):
    result = run(jaeger, "validate", configs)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_storage_overlay_points_the_query_and_the_exporter_at_its_store(jaeger):
    result = run(jaeger, "print-config", [DEPLOY / "jaeger-ingester.yaml", DEPLOY / "storage" / "elasticsearch.yaml"])
    assert result.returncode == 0, result.stderr
    assert "trace_storage: es_store" in result.stdout and "traces: es_store" in result.stdout


def test_the_tail_sampling_overlay_samples_after_the_span_metrics(jaeger):
    """The Monitor tab's rates come from every span; only what goes on to Jaeger is sampled."""
    result = run(jaeger, "print-config", [ROOT / "otel-collector.yaml", DEPLOY / "tail-sampling.yaml"])
    assert result.returncode == 0, result.stderr
    pipelines = yaml.safe_load(result.stdout)["service"]["pipelines"]
    assert "spanmetrics" in pipelines["traces"]["exporters"]
    assert "otlp/jaeger" not in pipelines["traces"]["exporters"]
    assert pipelines["traces/sampled"]["processors"][0] == "tail_sampling"
    assert "otlp/jaeger" in pipelines["traces/sampled"]["exporters"]


def test_docker_compose_runs_the_shipped_configs_unchanged():
    """Each service that mounts a file of the repo mounts one that exists, and sets only variables
    that the mounted config reads."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scale = {name for name, service in services.items() if "scale" in service.get("profiles", [])}
    assert scale == {"kafka", "agent", "ingester"}
    mounted = 0
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            path = (ROOT / source).resolve()
            assert path.is_file(), f"{name} mounts {source}, which is not in the repo"
            mounted += 1
            if path.suffix != ".yaml":
                continue
            assert any(target in arg for arg in service["command"]), f"{name} does not run {target}"
            text = path.read_text()
            for variable in service.get("environment", {}):
                assert re.search(r"\$\{env:" + variable + r"[:}]", text), \
                    f"{name}: {variable} is not read by {path.name}"
    assert mounted >= 5
