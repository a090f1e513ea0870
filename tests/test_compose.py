"""docker-compose.yml and the Dockerfile agree with the code they run.

Docker is not needed: the compose file is read as YAML and its ``${VAR}`` references are resolved the way
Compose resolves them, then checked against Settings, the CLI, the search attributes our workflows set,
and the scripts under deploy/. The namespace setup script is run for real against a fake ``temporal`` CLI.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from pydantic import AliasChoices
from sqlalchemy.engine import make_url

from salesflow.cli import app as cli_app
from salesflow.settings import Settings
from salesflow.stack import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

# The only variable the stack refuses to default; everything else has a working default.
REQUIRED_ENV = {"SALESFLOW_JWT_SECRET": "test-" + "s" * 59}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# ---- reading compose the way Compose does ---------------------------------------------------------


class MissingVariableError(Exception):
    """A ``${VAR:?message}`` reference whose variable is unset (Compose refuses to start)."""


_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``."""

    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = name in env
        empty_counts_as_unset = op is not None and op.startswith(":")
        usable = present and (env[name] != "" or not empty_counts_as_unset)
        if op in (":-", "-"):
            return env[name] if usable else arg
        if op in (":?", "?"):
            if not usable:
                raise MissingVariableError(f"{name}: {arg}")
            return env[name]
        return env.get(name, "")

    return _REFERENCE.sub(substitute, value)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string in a parsed compose document."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(item, env) for key, item in node.items()}
    return node


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml with variables resolved from ``env`` (the required ones filled in by default)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return resolve(raw, REQUIRED_ENV if env is None else env)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def as_list(value: Any) -> list[str]:
    """A command or entrypoint as a list (Compose also accepts a shell-split string)."""
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def image_repository(service: Mapping[str, Any]) -> str:
    return str(service.get("image", "")).rsplit(":", 1)[0]


def services_with_image(services: Mapping[str, Any], repository: str) -> list[str]:
    return [name for name, svc in services.items() if image_repository(svc) == repository]


def our_services(services: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the salesflow image (built from our Dockerfile)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def published(service: Mapping[str, Any]) -> dict[int, int]:
    """Container port -> host port, from ``[ip:]host:container`` entries."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        mapping[int(parts[-1].split("/")[0])] = int(parts[-2])
    return mapping


def bind_mounts(service: Mapping[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path -> repository path, for ``./host:/container[:mode]`` volumes."""
    mounts: dict[PurePosixPath, Path] = {}
    for entry in service.get("volumes", []):
        parts = str(entry).split(":")
        if len(parts) >= 2 and parts[0].startswith("."):
            mounts[PurePosixPath(parts[1])] = (ROOT / parts[0]).resolve()
    return mounts


def host_path(service: Mapping[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of ``service`` comes from, if it is bind-mounted."""
    target = PurePosixPath(container_path)
    for mount, source in bind_mounts(service).items():
        if target == mount or mount in target.parents:
            return source / target.relative_to(mount)
    return None


def mounted_scripts(service: Mapping[str, Any]) -> list[Path]:
    """Repository scripts that a service's entrypoint/command runs."""
    args = as_list(service.get("entrypoint")) + as_list(service.get("command"))
    paths = [host_path(service, arg) for arg in args if arg.startswith("/")]
    return [p for p in paths if p is not None]


def accepted_env_names() -> set[str]:
    """Every environment variable Settings reads: alias choices, else SALESFLOW_ + field name."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(prefix + field_name)
    return {name.upper() for name in names}


def cli_commands() -> set[str]:
    return set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        instruction, _, args = stripped.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def init_sql() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "deploy/postgres/initdb").iterdir()))


# ---- every service can start ----------------------------------------------------------------------


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name, svc in services.items() if "image" not in svc and "build" not in svc]
    assert not missing


def test_api_worker_and_migrate_are_built_from_our_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    ours = our_services(services)
    assert {"api", "worker", "migrate"} <= set(ours)
    for name, svc in ours.items():
        build = svc["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert dockerfile.resolve() == DOCKERFILE, name
    # One image for the three roles, so one build serves them all.
    assert len({svc["image"] for svc in ours.values()}) == 1


def test_compose_runs_only_commands_the_salesflow_cli_has(services: dict[str, dict[str, Any]]) -> None:
    commands = cli_commands()
    roles = {name: as_list(svc.get("command")) for name, svc in our_services(services).items()}
    assert {name: args[0] for name, args in roles.items()} == {"api": "api", "worker": "worker",
                                                             "migrate": "migrate"}
    assert {args[0] for args in roles.values()} <= commands


def test_bind_mounted_files_and_scripts_exist_in_the_repository(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for source in bind_mounts(svc).values():
            assert source.exists(), f"{name} mounts missing {source}"
        for script in mounted_scripts(svc):
            assert script.is_file(), f"{name} runs missing {script}"


# ---- ports ----------------------------------------------------------------------------------------


def test_api_temporal_and_ui_are_published_on_their_usual_ports(services: dict[str, dict[str, Any]]) -> None:
    api_port = Settings.model_fields["api_port"].default
    assert published(services["api"]) == {api_port: 8000}
    (temporal,) = services_with_image(services, "temporalio/server")
    assert published(services[temporal]) == {7233: 7233}
    (ui,) = services_with_image(services, "temporalio/ui")
    assert published(services[ui]) == {8080: 8233}


def test_links_the_api_hands_out_use_the_published_ports(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["api"])
    (ui,) = services_with_image(services, "temporalio/ui")
    assert urlsplit(env["SALESFLOW_TEMPORAL_UI_URL"]).port == published(services[ui])[8080]
    api_port = Settings.model_fields["api_port"].default
    assert urlsplit(env["SALESFLOW_PUBLIC_BASE_URL"]).port == published(services["api"])[api_port]


# ---- environment of our processes -----------------------------------------------------------------


def test_our_services_set_only_environment_variables_settings_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    accepted = accepted_env_names()
    assert {"DATABASE_URL", "TEMPORAL_ADDRESS", "SALESFLOW_JWT_SECRET"} <= accepted
    unknown = {
        name: sorted(set(environment(svc)) - accepted)
        for name, svc in our_services(services).items()
        if set(environment(svc)) - accepted
    }
    assert not unknown, f"Settings never reads {unknown}"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_environment_loads_into_production_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    for name in accepted_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(services[service]).items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    assert settings.jwt_secret == REQUIRED_ENV["SALESFLOW_JWT_SECRET"]
    assert settings.database_url is not None
    assert settings.temporal_address is not None
    if service == "api":
        # Inside a container the API must listen beyond loopback to be reachable through the port.
        assert settings.api_host == "0.0.0.0"


def test_api_and_worker_share_one_configuration(services: dict[str, dict[str, Any]]) -> None:
    api, worker = environment(services["api"]), environment(services["worker"])
    api.pop("SALESFLOW_API_HOST")
    assert api == worker


def test_jwt_secret_has_no_default_and_compose_refuses_to_start_without_it(
    raw_compose: dict[str, Any],
) -> None:
    for name in ("api", "worker"):
        value = environment(raw_compose["services"][name])["SALESFLOW_JWT_SECRET"]
        assert value.startswith("${SALESFLOW_JWT_SECRET:?")
    with pytest.raises(MissingVariableError, match="SALESFLOW_JWT_SECRET"):
        load_compose(env={})


def test_database_url_is_asyncpg_on_the_postgres_service_and_its_app_database(
    services: dict[str, dict[str, Any]],
) -> None:
    (postgres,) = services_with_image(services, "postgres")
    sql = init_sql()
    for name in ("api", "worker", "migrate"):
        url = make_url(environment(services[name])["DATABASE_URL"])
        assert url.drivername == "postgresql+asyncpg"
        assert url.host == postgres
        assert url.port == 5432
        assert re.search(rf"CREATE DATABASE {url.database} OWNER {url.username}\b", sql), name
        assert re.search(rf"CREATE ROLE {url.username} LOGIN\b", sql), name


@pytest.mark.parametrize("env", [REQUIRED_ENV, {**REQUIRED_ENV, "SALESFLOW_DB_PASSWORD": "changed-1"}])
def test_app_database_password_is_the_one_postgres_creates_the_role_with(env: dict[str, str]) -> None:
    services = load_compose(env)["services"]
    (postgres,) = services_with_image(services, "postgres")
    role_password = environment(services[postgres])["SALESFLOW_DB_PASSWORD"]
    assert "SALESFLOW_DB_PASSWORD" in init_sql()
    for name in ("api", "worker", "migrate"):
        assert make_url(environment(services[name])["DATABASE_URL"]).password == role_password


def test_temporal_address_points_at_the_temporal_frontend(services: dict[str, dict[str, Any]]) -> None:
    (temporal,) = services_with_image(services, "temporalio/server")
    clients = [name for name, svc in services.items() if "TEMPORAL_ADDRESS" in environment(svc)]
    assert {"api", "worker", "temporal-ui"} <= set(clients)
    for name in clients:
        assert environment(services[name])["TEMPORAL_ADDRESS"] == f"{temporal}:7233", name


# ---- start order ----------------------------------------------------------------------------------


def test_dependencies_name_existing_services_with_conditions_they_can_meet(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        for dep, spec in depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec.get("condition", "service_started")
            assert condition in CONDITIONS, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no check"
            if condition == "service_completed_successfully":
                # A job that restarts forever never "completes".
                assert services[dep].get("restart", "no") in ("no", False), f"{dep} is not one-shot"


def test_start_order_has_no_cycles(services: dict[str, dict[str, Any]]) -> None:
    done: set[str] = set()
    remaining = dict(services)
    while remaining:
        ready = [name for name, svc in remaining.items() if set(depends_on(svc)) <= done]
        assert ready, f"dependency cycle among {sorted(remaining)}"
        done.update(ready)
        for name in ready:
            del remaining[name]


def test_postgres_reports_healthy_with_pg_isready(services: dict[str, dict[str, Any]]) -> None:
    (postgres,) = services_with_image(services, "postgres")
    assert services[postgres]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(as_list(services[postgres]["healthcheck"]["test"]))
    assert any(target == "/var/lib/postgresql/data" for target in
               (str(v).split(":")[1] for v in services[postgres]["volumes"]))


def test_migrations_run_once_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    (postgres,) = services_with_image(services, "postgres")
    assert depends_on(services["migrate"]) == {postgres: {"condition": "service_healthy"}}


@pytest.mark.parametrize("service", ["api", "worker"])
def test_app_starts_after_migrations_temporal_and_search_attributes(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    (temporal,) = services_with_image(services, "temporalio/server")
    deps = {dep: spec["condition"] for dep, spec in depends_on(services[service]).items()}
    assert deps["migrate"] == "service_completed_successfully"
    assert deps[temporal] == "service_healthy"
    (registrar,) = search_attribute_registrars(services)
    assert deps[registrar] == "service_completed_successfully"


def test_api_healthcheck_probes_the_api_health_route(services: dict[str, dict[str, Any]]) -> None:
    from api.app import create_app

    probe = " ".join(as_list(services["api"]["healthcheck"]["test"]))
    (url,) = re.findall(r"https?://[^'\"\s]+", probe)
    parts = urlsplit(url)
    assert parts.port == Settings.model_fields["api_port"].default
    paths = create_app(Settings()).openapi()["paths"]
    assert "get" in paths[parts.path]


# ---- Temporal ---------------------------------------------------------------------------------------


def search_attribute_registrars(services: Mapping[str, Any]) -> list[str]:
    """Services whose command runs a script that creates search attributes."""
    return [
        name for name, svc in services.items()
        if any("search-attribute create" in script.read_text() for script in mounted_scripts(svc))
    ]


def registered_attributes(service: Mapping[str, Any]) -> dict[str, str]:
    pairs = [arg for arg in as_list(service.get("command")) if re.fullmatch(r"\w+=\w+", arg)]
    return dict(pair.split("=", 1) for pair in pairs)


def test_every_search_attribute_our_workflows_set_is_registered(services: dict[str, dict[str, Any]]) -> None:
    (registrar,) = search_attribute_registrars(services)
    assert registered_attributes(services[registrar]) == SEARCH_ATTRIBUTES


def test_search_attributes_are_registered_in_the_namespace_the_app_uses() -> None:
    for env in (REQUIRED_ENV, {**REQUIRED_ENV, "TEMPORAL_NAMESPACE": "sales-prod"}):
        services = load_compose(env)["services"]
        (registrar,) = search_attribute_registrars(services)
        namespace = environment(services[registrar])["TEMPORAL_NAMESPACE"]
        for name in ("api", "worker"):
            assert environment(services[name])["TEMPORAL_NAMESPACE"] == namespace


@pytest.mark.parametrize("env", [REQUIRED_ENV, {**REQUIRED_ENV, "TEMPORAL_DB_PASSWORD": "changed-2"}])
def test_temporal_server_uses_the_databases_and_role_the_schema_job_prepares(env: dict[str, str]) -> None:
    services = load_compose(env)["services"]
    (temporal,) = services_with_image(services, "temporalio/server")
    (postgres,) = services_with_image(services, "postgres")
    server = environment(services[temporal])
    schema_jobs = [dep for dep, spec in depends_on(services[temporal]).items()
                   if spec["condition"] == "service_completed_successfully"]
    (schema,) = schema_jobs
    job = environment(services[schema])
    assert image_repository(services[schema]) == "temporalio/admin-tools"
    assert (job["SQL_PLUGIN"], server["DB"]) == ("postgres12", "postgres12")
    assert job["SQL_HOST"] == server["POSTGRES_SEEDS"] == postgres
    assert job["SQL_USER"] == server["POSTGRES_USER"]
    assert job["SQL_PASSWORD"] == server["POSTGRES_PWD"] == environment(services[postgres])["TEMPORAL_DB_PASSWORD"]
    assert (job["SQL_DATABASE"], job["SQL_VISIBILITY_DATABASE"]) == (server["DBNAME"], server["VISIBILITY_DBNAME"])
    assert re.search(rf"CREATE ROLE {server['POSTGRES_USER']} LOGIN CREATEDB\b", init_sql())
    script = " ".join(p.read_text() for p in mounted_scripts(services[schema]))
    for step in ("create", "setup-schema", "update-schema"):
        assert f"temporal-sql-tool --db \"$1\" {step}" in script


@pytest.mark.parametrize("env", [REQUIRED_ENV, {**REQUIRED_ENV, "TEMPORAL_VERSION": "9.9.9"}])
def test_admin_tools_match_the_server_version_so_schema_and_server_agree(env: dict[str, str]) -> None:
    services = load_compose(env)["services"]
    (temporal,) = services_with_image(services, "temporalio/server")
    version = services[temporal]["image"].rsplit(":", 1)[1]
    tools = [svc["image"] for svc in services.values() if image_repository(svc) == "temporalio/admin-tools"]
    assert tools
    assert all(image.rsplit(":", 1)[1] == version for image in tools)


def test_temporal_reads_the_mounted_dynamic_config(services: dict[str, dict[str, Any]]) -> None:
    (temporal,) = services_with_image(services, "temporalio/server")
    path = host_path(services[temporal], environment(services[temporal])["DYNAMIC_CONFIG_FILE_PATH"])
    assert path is not None
    assert path == ROOT / "deploy/temporal/dynamicconfig/development-sql.yaml"
    config = yaml.safe_load(path.read_text())
    assert all(isinstance(values, list) and all("value" in v for v in values) for values in config.values())


# ---- the namespace script itself, against a fake `temporal` CLI --------------------------------------

FAKE_TEMPORAL = """\
import json, os, sys
path = os.environ["FAKE_TEMPORAL_STATE"]
with open(path) as f:
    state = json.load(f)
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1]
state["calls"].append(" ".join(args[:3]))
code = 0
if args[:3] == ["operator", "cluster", "health"]:
    state["health_checks"] += 1
    print("SERVING" if state["health_checks"] > state["not_serving_for"] else "NOT_SERVING")
elif args[:3] == ["operator", "namespace", "describe"]:
    code = 0 if opt("--namespace") in state["namespaces"] else 1
elif args[:3] == ["operator", "namespace", "create"]:
    state["namespaces"].append(opt("--namespace"))
elif args[:3] == ["operator", "search-attribute", "list"]:
    if opt("--namespace") in state["namespaces"]:
        print("  Name  Type")
        for name, kind in {"WorkflowId": "Keyword", **state["attributes"]}.items():
            print(f"  {name}  {kind}")
    else:
        code = 1
elif args[:3] == ["operator", "search-attribute", "create"]:
    state["attributes"].setdefault(opt("--name"), opt("--type"))
else:
    code = 2
with open(path, "w") as f:
    json.dump(state, f)
sys.exit(code)
"""


def run_setup_namespace(tmp_path: Path, state: dict[str, Any], args: list[str]) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "temporal"
    fake.write_text(f"#!{sys.executable}\n{FAKE_TEMPORAL}")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    state_file = tmp_path / "state.json"
    if not state_file.exists():
        state_file.write_text(json.dumps({"calls": [], "health_checks": 0, **state}))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_TEMPORAL_STATE": str(state_file),
        "TEMPORAL_ADDRESS": "temporal:7233",
        "TEMPORAL_NAMESPACE": "salesflow-test",
        "SETUP_RETRY_SECONDS": "0",
        "SETUP_MAX_ATTEMPTS": "5",
    }
    script = ROOT / "deploy/temporal/scripts/setup-namespace.sh"
    return subprocess.run(["/bin/sh", str(script), *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def state_of(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "state.json").read_text())  # type: ignore[no-any-return]


def test_namespace_script_waits_for_serving_then_creates_namespace_and_attributes_once(
    tmp_path: Path, services: dict[str, dict[str, Any]]
) -> None:
    (registrar,) = search_attribute_registrars(services)
    args = as_list(services[registrar]["command"])
    fresh = {"not_serving_for": 2, "namespaces": [], "attributes": {}}

    first = run_setup_namespace(tmp_path, fresh, args)
    assert first.returncode == 0, first.stderr
    state = state_of(tmp_path)
    assert state["health_checks"] == 3  # NOT_SERVING twice is not taken for SERVING
    assert state["namespaces"] == ["salesflow-test"]
    assert state["attributes"] == SEARCH_ATTRIBUTES

    second = run_setup_namespace(tmp_path, fresh, args)
    assert second.returncode == 0, second.stderr
    again = state_of(tmp_path)
    assert again["namespaces"] == ["salesflow-test"]
    creates = [call for call in again["calls"] if call.endswith(" create")]
    assert len(creates) == 1 + len(SEARCH_ATTRIBUTES)  # the rerun created nothing


def test_namespace_script_fails_when_an_attribute_exists_with_another_type(tmp_path: Path) -> None:
    taken = {"not_serving_for": 0, "namespaces": ["salesflow-test"], "attributes": {"OrgId": "Text"}}
    result = run_setup_namespace(tmp_path, taken, ["OrgId=Keyword"])
    assert result.returncode != 0
    assert "OrgId exists as Text, expected Keyword" in result.stderr
    assert state_of(tmp_path)["attributes"] == {"OrgId": "Text"}


def test_namespace_script_rejects_arguments_that_are_not_name_type_pairs(tmp_path: Path) -> None:
    result = run_setup_namespace(tmp_path, {"not_serving_for": 0, "namespaces": [], "attributes": {}}, ["OrgId"])
    assert result.returncode == 2
    assert "expected NAME=TYPE" in result.stderr


# ---- the image ------------------------------------------------------------------------------------


def test_image_entrypoint_is_the_salesflow_cli_and_its_default_command_exists() -> None:
    instructions = dockerfile_instructions()
    workdir = [args for ins, args in instructions if ins == "WORKDIR"][-1]
    entrypoint = json.loads([args for ins, args in instructions if ins == "ENTRYPOINT"][-1])
    cmd = json.loads([args for ins, args in instructions if ins == "CMD"][-1])

    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    (binary,) = entrypoint
    assert PurePosixPath(binary).parent == PurePosixPath(workdir) / ".venv/bin"
    assert scripts[PurePosixPath(binary).name] == "salesflow.cli:app"
    assert cmd == ["api"]
    assert cmd[0] in cli_commands()


def test_image_installs_locked_runtime_dependencies_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for ins, args in instructions if ins == "RUN"]
    assert any("pip install --no-cache-dir uv==0.13.8" in run for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 2
    assert all("--frozen" in run and "--no-dev" in run for run in syncs)
    assert "--no-install-project" in syncs[0]  # dependencies cached apart from our code
    copies = [args for ins, args in instructions if ins == "COPY"]
    assert copies[0].split()[:2] == ["pyproject.toml", "uv.lock"]
    user = [args for ins, args in instructions if ins == "USER"][-1]
    assert user not in ("root", "0")


def test_dockerignore_keeps_local_state_and_tests_out_but_the_project_in() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch(path, p) or fnmatch(path, p.removeprefix("**/")) for p in patterns)

    for path in (".venv", ".tools", ".data", ".env", "tests", ".git", "__pycache__", ".pytest_cache"):
        assert ignored(path), path
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for path in ("pyproject.toml", "uv.lock", "README.md", *packages):
        assert not ignored(path), path
