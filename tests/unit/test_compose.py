"""The container deployment: deploy/Dockerfile, docker-compose.yml and their compose-specific
configs agree with each other, with the settings and with the monitoring files.

``docker-compose config`` resolves the stack with the committed example env file (secrets come
only from that file), the Dockerfile's healthcheck command really runs against a local HTTP
server, and ``promtool`` checks the compose Prometheus configuration. Tests that need a tool
skip, naming it, only when its binary is absent (``.ci/run`` installs both with apt). No image
is built and nothing is run in a container.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scaler.config import Settings, Venue, load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = DEPLOY / "compose.env.example"
ENV_FILE = "deploy/.env"  # where the user puts the real secrets (git-ignored)
PROMETHEUS_COMPOSE = DEPLOY / "prometheus" / "prometheus.compose.yml"
GRAFANA_DATASOURCES_COMPOSE = DEPLOY / "grafana" / "datasources.compose.yml"
SERVICES = {"exchange-sim", "scaler", "prometheus", "alertmanager", "grafana"}
SCALER_IMAGE_SERVICES = ("exchange-sim", "scaler")
STATE_DIR = "/var/lib/scaler"
TOOL_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    """The path of an external binary, or skip the test saying which one is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it with apt)")
    return path


def env_example() -> dict[str, str]:
    """The KEY=value pairs of deploy/compose.env.example."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def run_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml --env-file ENV_FILE ARGS...`` from the repository
    root, with none of the env file's variables (nor COMPOSE_*) inherited from this process."""
    binary = tool("docker-compose")
    names = set(env_example())
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def yaml_to_data(text: str) -> Any:
    """Parse YAML without making PyYAML a test dependency: use it when importable, else the
    interpreter of Debian's docker-compose 1.x (a Python program that depends on PyYAML)."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    binary = tool("docker-compose")
    with open(binary, "rb") as file:
        first_line = file.read(256).split(b"\n", 1)[0]
    if first_line.startswith(b"#!") and b"python" in first_line:
        interpreter = first_line[2:].decode().split()
        convert = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        result = subprocess.run(
            [*interpreter, "-c", convert],
            input=text,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        if result.returncode == 0:
            return json.loads(result.stdout)
    pytest.skip("no YAML parser: neither PyYAML nor a Python docker-compose is installed")


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The resolved compose configuration with the example env file, as plain data
    (``config --format json`` for docker-compose 2, the YAML of ``config`` for 1.x)."""
    as_json = run_compose("config", "--format", "json", env_file=ENV_EXAMPLE)
    if as_json.returncode == 0 and as_json.stdout.lstrip().startswith("{"):
        data: dict[str, Any] = json.loads(as_json.stdout)
        return data
    result = run_compose("config", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return dict(yaml_to_data(result.stdout))


def service(resolved: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = resolved["services"]
    return services[name]


def environment(resolved: dict[str, Any], name: str) -> dict[str, str]:
    env = service(resolved, name).get("environment") or {}
    if isinstance(env, list):  # KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def ports(resolved: dict[str, Any], name: str) -> set[tuple[str, int, int]]:
    """(host ip, published port, container port) of a service, from either the short form
    (``127.0.0.1:8787:8787/tcp``, docker-compose 1.x) or the long one (2.x)."""
    found = set()
    for entry in service(resolved, name).get("ports", []):
        if isinstance(entry, str):
            host_ip, published, target = entry.split("/")[0].rsplit(":", 2)
            found.add((host_ip, int(published), int(target)))
        else:
            found.add((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
    return found


def mounts(resolved: dict[str, Any], name: str) -> dict[str, str]:
    """Container path -> source (a named volume, or an absolute host path for a bind mount)."""
    found = {}
    for entry in service(resolved, name).get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry["source"], entry["target"]
        found[target] = source
    return found


def config_lines(path: Path) -> list[str]:
    """A YAML file's lines without comments and blank lines (for comparing two configs)."""
    lines = []
    for line in path.read_text().splitlines():
        code = re.sub(r"(^|\s+)#.*$", "", line).rstrip()
        if code:
            lines.append(code)
    return lines


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, cwd: Path) -> Settings:
    """The settings a container with exactly these SCALER_* variables would load."""
    for key in list(os.environ):
        if key.upper().startswith("SCALER_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)  # no stray .env
    return load_settings()


# ------------------------------------------------------------------------- Dockerfile parsing


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line
        keyword, _, arguments = current.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continuation line"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (from its FROM); global ARGs are dropped."""
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
    return found


def global_args() -> dict[str, str]:
    args = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def final(keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction of the final stage."""
    return [arguments for kw, arguments in final_stage() if kw == keyword]


def stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The ENV of a stage (KEY=value form)."""
    env = {}
    for keyword, arguments in stage:
        if keyword != "ENV":
            continue
        for item in shlex.split(arguments):
            key, sep, value = item.partition("=")
            assert sep, f"ENV in KEY=value form only: {arguments!r}"
            env[key] = value
    return env


def image_env() -> dict[str, str]:
    """The environment the image sets (its final stage's ENV)."""
    return stage_env(final_stage())


def healthcheck_command() -> list[str]:
    """The exec-form command of the final stage's HEALTHCHECK, exactly as written."""
    (healthcheck,) = final("HEALTHCHECK")
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", healthcheck)
    assert match is not None, f"HEALTHCHECK [options] CMD [exec form] expected: {healthcheck}"
    command: list[str] = json.loads(match[2])
    return command


# ----------------------------------------------------------------------- a local HTTP server


@contextlib.contextmanager
def http_server(statuses: dict[str, int]) -> Iterator[tuple[int, list[str]]]:
    """A server on a free 127.0.0.1 port answering GET ``path`` with ``statuses[path]`` (404
    for any other path); yields its port and the list of paths requested."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            body = b"ok\n"
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_probe(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a healthcheck command as the container would, with this test's Python standing in
    for the image's ``python`` and only ``env`` as SCALER_* variables."""
    assert command[0] == "python", command
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SCALER_")}
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )


# ------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_and_installs_only_the_built_wheels() -> None:
    """A builder stage on python:3.11-slim makes the wheels and installs exactly those, without
    an index, into a prefix; the final stage, on the same base, copies only that prefix and
    installs nothing itself: no wheel, pip cache or build tool reaches the image."""
    all_stages = stages()
    assert len(all_stages) >= 2
    bases = []
    for stage in all_stages:
        base = stage[0][1].split()[0]
        for name, default in global_args().items():
            base = base.replace(f"${{{name}}}", default)
        bases.append(base)
    assert bases[0] == bases[-1], "the installed tree must match the final interpreter"
    assert bases[-1].startswith("python:3.11-slim"), bases[-1]
    builder = " ".join(arguments for keyword, arguments in all_stages[0] if keyword == "RUN")
    wheel_dir = re.search(r"pip wheel --wheel-dir (\S+) \.", builder)
    assert wheel_dir is not None, builder
    install = re.search(
        rf"pip install --no-index --find-links={wheel_dir[1]} --prefix=(\S+) scaler\b", builder
    )
    assert install is not None, builder
    assert final("COPY") == [f"--from=builder {install[1]} /usr/local"]
    runs = " ".join(final("RUN"))
    assert not re.search(r"\b(pip|apt-get|gcc|build-essential)\b", runs), runs
    for stage in all_stages:
        assert stage_env(stage)["PIP_NO_CACHE_DIR"] == "1"


def test_dockerfile_runs_unprivileged_with_a_state_volume_and_the_scaler_entrypoint() -> None:
    """The final stage runs as a fixed non-root UID, keeps state in the volume SCALER_STATE_DIR
    points at, exposes the three ports and runs ``scaler run`` by default."""
    (user,) = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a fixed numeric UID, so volumes can be prepared for it"
    assert int(uid) != 0
    assert "root" not in user
    env = image_env()
    assert env["SCALER_STATE_DIR"] == STATE_DIR
    assert json.loads(final("VOLUME")[-1]) == [STATE_DIR]
    assert f"--uid {uid}" in " ".join(final("RUN"))
    assert set(" ".join(final("EXPOSE")).split()) == {"8787", "9464", "8900"}
    assert json.loads(final("ENTRYPOINT")[-1]) == ["scaler"]
    assert json.loads(final("CMD")[-1]) == ["run"]
    assert final("HEALTHCHECK")


def test_image_environment_is_valid_settings_listening_on_all_interfaces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every SCALER_* variable of the image is a real setting; in the container the control API,
    the metrics and the simulator listen on 0.0.0.0 and state goes to the volume."""
    env = {k: v for k, v in image_env().items() if k.startswith("SCALER_")}
    settings = settings_from(env, monkeypatch, tmp_path)
    assert settings.api.host == settings.metrics.host == settings.sim.host == "0.0.0.0"
    assert settings.state_dir == Path(STATE_DIR)


def test_dockerfile_healthcheck_passes_on_200_from_the_configured_port() -> None:
    """The HEALTHCHECK command, run as written, GETs /healthz on SCALER_API__PORT and exits 0
    on 200, whatever proxy the environment names."""
    command = healthcheck_command()
    proxy = f"http://127.0.0.1:{closed_port()}"
    with http_server({"/healthz": 200}) as (port, requested):
        result = run_probe(
            command, {"SCALER_API__PORT": str(port), "http_proxy": proxy, "HTTP_PROXY": proxy}
        )
    assert result.returncode == 0, result.stderr
    assert requested == ["/healthz"]


def test_dockerfile_healthcheck_fails_on_an_error_status_or_a_closed_port() -> None:
    """An HTTP 503 or nothing listening on the port makes the healthcheck exit non-zero."""
    command = healthcheck_command()
    with http_server({"/healthz": 503}) as (port, requested):
        unhealthy = run_probe(command, {"SCALER_API__PORT": str(port)})
    assert requested == ["/healthz"]
    assert unhealthy.returncode != 0
    refused = run_probe(command, {"SCALER_API__PORT": str(closed_port())})
    assert refused.returncode != 0


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (the last matching pattern
    wins; a pattern matching a parent directory matches the path)."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in DOCKERIGNORE.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_the_sources_to_the_build() -> None:
    """What the builder copies is in the context; the virtualenv, git, state, caches, tests
    and every secrets file are not."""
    for path in ("pyproject.toml", "README.md", "src/scaler/cli.py", "src/scaler/py.typed"):
        assert not dockerignored(path), path
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "var/scaler.sqlite3",
        ".env",
        ENV_FILE,
        "deploy/compose.env",
        "tests/unit/test_compose.py",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/cache.db",
        "src/scaler/__pycache__/cli.cpython-311.pyc",
        "src/scaler.egg-info/PKG-INFO",
        "replay-out/report.json",
        "bench/results/x.json",
    ):
        assert dockerignored(path), path
    copied = [
        source
        for keyword, arguments in stages()[0]
        if keyword == "COPY"
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source.rstrip("/")), source


# ----------------------------------------------------------------------------------- compose


def test_compose_config_is_valid_with_the_example_env_file() -> None:
    """``docker-compose config`` accepts the file with the committed example env file."""
    result = run_compose("config", "-q", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    services = run_compose("config", "--services", env_file=ENV_EXAMPLE)
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == SERVICES


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    """With an env file that lacks them, docker-compose stops and names a missing secret."""
    empty = tmp_path / "empty.env"
    empty.write_text("# nothing\n")
    result = run_compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert any(name in result.stderr for name in env_example()), result.stderr
    assert ENV_FILE in result.stderr  # the message says where to put them


def test_compose_file_holds_no_secret_and_takes_each_from_the_env_file() -> None:
    """No example value is written in docker-compose.yml; every secret-looking variable there
    is a required ``${VAR:?...}`` interpolation, and they are exactly the example's keys."""
    text = COMPOSE_FILE.read_text()
    example = env_example()
    for key, value in example.items():
        assert value, key
        assert "fake" in value, f"{key}: the example holds clearly fake placeholders"
        assert value not in text, f"{key}'s value is written in docker-compose.yml"
    text = "\n".join(config_lines(COMPOSE_FILE))  # the comments may quote ${VAR:?...}
    secret_lines = re.findall(r"^\s+(\w*(?:KEY|SECRET|TOKEN|PASSWORD)\w*): (.*)$", text, re.M)
    assert secret_lines
    for name, value in secret_lines:
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name} is not from the env file"
    assert set(re.findall(r"\$\{([A-Z_]+):\?", text)) == set(example)
    assert "env_file" not in text


def test_compose_env_file_is_git_ignored() -> None:
    """The file the user writes the real secrets into can never be committed."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (or git is not installed)")
    result = subprocess.run(
        [git, "check-ignore", "-q", ENV_FILE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{ENV_FILE} is not git-ignored"


def test_each_service_receives_only_its_own_secrets(resolved: dict[str, Any]) -> None:
    """The sim gets the key pair, the daemon the same pair as exchange credentials plus the
    control token, Grafana its admin password; nobody else gets any of them."""
    example = env_example()
    expected = {
        "exchange-sim": {
            "SCALER_SIM__API_KEY": example["SIM_API_KEY"],
            "SCALER_SIM__API_SECRET": example["SIM_API_SECRET"],
        },
        "scaler": {
            "SCALER_EXCHANGE__API_KEY": example["SIM_API_KEY"],
            "SCALER_EXCHANGE__API_SECRET": example["SIM_API_SECRET"],
            "SCALER_API__TOKEN": example["CONTROL_API_TOKEN"],
        },
        "grafana": {"GF_SECURITY_ADMIN_PASSWORD": example["GRAFANA_ADMIN_PASSWORD"]},
        "prometheus": {},
        "alertmanager": {},
    }
    secrets = set(example.values())
    for name, wanted in expected.items():
        env = environment(resolved, name)
        got = {k: v for k, v in env.items() if v in secrets}
        assert got == wanted, name


def test_every_port_is_published_on_loopback_only(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES
    published = {name: ports(resolved, name) for name in SERVICES}
    assert published == {
        "exchange-sim": {("127.0.0.1", 8900, 8900)},
        "scaler": {("127.0.0.1", 8787, 8787), ("127.0.0.1", 9464, 9464)},
        "prometheus": {("127.0.0.1", 9090, 9090)},
        "alertmanager": {("127.0.0.1", 9093, 9093)},
        "grafana": {("127.0.0.1", 3000, 3000)},
    }


def test_scaler_trades_on_the_simulator_through_ccxt(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both run the image of deploy/Dockerfile; with the image's and the service's variables,
    the daemon's settings name venue deribit at http://exchange-sim:<the sim's port> with the
    sim's key pair, and it starts only once the sim is healthy."""
    for name in SCALER_IMAGE_SERVICES:
        build = service(resolved, name)["build"]
        assert Path(build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "deploy/Dockerfile"
        assert service(resolved, name)["image"] == service(resolved, "scaler")["image"]
    assert service(resolved, "exchange-sim")["command"] == ["exchange-sim"]
    assert service(resolved, "scaler")["command"] == ["run"]
    assert service(resolved, "scaler")["depends_on"]["exchange-sim"]["condition"] == (
        "service_healthy"
    )
    base = {k: v for k, v in image_env().items() if k.startswith("SCALER_")}
    sim = settings_from({**base, **environment(resolved, "exchange-sim")}, monkeypatch, tmp_path)
    daemon = settings_from({**base, **environment(resolved, "scaler")}, monkeypatch, tmp_path)
    assert daemon.venue is Venue.DERIBIT
    assert daemon.exchange.url == f"http://exchange-sim:{sim.sim.port}"
    assert daemon.exchange.ws_url is None  # derived from the URL
    assert daemon.exchange.api_key is not None
    assert sim.sim.api_key is not None
    assert daemon.exchange.api_key.get_secret_value() == sim.sim.api_key.get_secret_value()
    assert daemon.api.token is not None
    assert sim.sim.host == daemon.api.host == daemon.metrics.host == "0.0.0.0"
    assert ("127.0.0.1", sim.sim.port, sim.sim.port) in ports(resolved, "exchange-sim")
    assert ports(resolved, "scaler") == {
        ("127.0.0.1", daemon.api.port, daemon.api.port),
        ("127.0.0.1", daemon.metrics.port, daemon.metrics.port),
    }
    targets = re.findall(r'targets: \["([^"]+)"\]', PROMETHEUS_COMPOSE.read_text())
    assert f"scaler:{daemon.metrics.port}" in targets


def test_services_restart_keep_state_in_named_volumes_and_have_healthchecks(
    resolved: dict[str, Any],
) -> None:
    """Every service restarts and has a healthcheck (the daemon's is the image's); the sim and
    the daemon keep state in their own named volume at the image's state directory; the daemon
    gets more time to stop than its shutdown deadline."""
    volumes = set(resolved["volumes"])
    for name in SERVICES:
        spec = service(resolved, name)
        assert spec["restart"] == "unless-stopped", name
        if name == "scaler":
            assert "healthcheck" not in spec  # the Dockerfile's HEALTHCHECK applies
        else:
            assert spec["healthcheck"]["test"][0] == "CMD", name
    state = {name: mounts(resolved, name)[STATE_DIR] for name in SCALER_IMAGE_SERVICES}
    assert set(state.values()) <= volumes
    assert len(set(state.values())) == len(state)
    for name, data_dir in (
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("grafana", "/var/lib/grafana"),
    ):
        assert mounts(resolved, name)[data_dir] in volumes, name
    grace = service(resolved, "scaler")["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", str(grace))
    assert match is not None, grace
    assert int(match[1]) > Settings().execution.shutdown_deadline_s


def test_sim_healthcheck_passes_on_200_and_fails_on_a_closed_port(
    resolved: dict[str, Any],
) -> None:
    """The compose healthcheck of exchange-sim GETs /admin/healthz on SCALER_SIM__PORT."""
    command = service(resolved, "exchange-sim")["healthcheck"]["test"][1:]
    with http_server({"/admin/healthz": 200}) as (port, requested):
        result = run_probe(command, {"SCALER_SIM__PORT": str(port)})
    assert result.returncode == 0, result.stderr
    assert requested == ["/admin/healthz"]
    assert run_probe(command, {"SCALER_SIM__PORT": str(closed_port())}).returncode != 0


def test_monitoring_services_mount_the_deploy_configs(resolved: dict[str, Any]) -> None:
    """Prometheus runs the compose config next to alerts.yml, Alertmanager the shipped config,
    Grafana the dashboard provider, the dashboards where the provider looks, and the compose
    datasource; every bind-mounted file exists."""
    prometheus = mounts(resolved, "prometheus")
    assert Path(prometheus["/etc/prometheus"]) == DEPLOY / "prometheus"
    command = service(resolved, "prometheus")["command"]
    assert f"--config.file=/etc/prometheus/{PROMETHEUS_COMPOSE.name}" in command
    alertmanager = mounts(resolved, "alertmanager")
    assert Path(alertmanager["/etc/alertmanager"]) == DEPLOY / "alertmanager"
    alertmanager_command = service(resolved, "alertmanager")["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager_command
    grafana = mounts(resolved, "grafana")
    provider = (DEPLOY / "grafana" / "provisioning" / "dashboards" / "scaler.yml").read_text()
    provider_path = re.search(r"^\s+path: (\S+)$", provider, re.M)
    assert provider_path is not None
    assert Path(grafana[provider_path[1]]) == DEPLOY / "grafana" / "dashboards"
    assert Path(grafana["/etc/grafana/provisioning/dashboards"]) == (
        DEPLOY / "grafana" / "provisioning" / "dashboards"
    )
    assert Path(grafana["/etc/grafana/provisioning/datasources/prometheus.yml"]) == (
        GRAFANA_DATASOURCES_COMPOSE
    )
    for name in SERVICES:
        for source in mounts(resolved, name).values():
            if source.startswith("/"):
                assert Path(source).exists(), (name, source)


def test_compose_prometheus_config_is_the_shipped_one_with_service_addresses() -> None:
    """prometheus.compose.yml is prometheus.yml (same intervals, job, rule file) with the
    daemon and Alertmanager at their compose service names."""
    shipped = [
        line.replace('"127.0.0.1:9464"', '"scaler:9464"').replace(
            '"127.0.0.1:9093"', '"alertmanager:9093"'
        )
        for line in config_lines(DEPLOY / "prometheus" / "prometheus.yml")
    ]
    assert config_lines(PROMETHEUS_COMPOSE) == shipped


def test_compose_grafana_datasource_is_the_shipped_one_at_the_prometheus_service() -> None:
    """datasources.compose.yml is the shipped datasource (same uid, the dashboard's default)
    with the URL of the compose service prometheus."""
    original = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    shipped = [
        line.replace("http://127.0.0.1:9090", "http://prometheus:9090")
        for line in config_lines(original)
    ]
    assert config_lines(GRAFANA_DATASOURCES_COMPOSE) == shipped


def test_compose_prometheus_config_passes_promtool() -> None:
    """`promtool check config` accepts the compose configuration and the alerts it loads."""
    promtool = tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_COMPOSE)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 rule files found" in output
