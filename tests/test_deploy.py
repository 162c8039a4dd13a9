"""The deployment files agree with each other and with the code they deploy.

`Dockerfile`, `docker-compose.yml`, `deploy/envoy.yaml` and `deploy/kubernetes.yaml` name the
same things many times over: the console scripts, the port, the health command, the compose
service name Envoy resolves, the shutdown grace period. A typo in any of them only shows up
when a container is deployed, so these tests parse the files and check each name against its
source of truth (`pyproject.toml`, the server's and the client's argument parsers).

Docker is not needed: the last tests run the image's ENTRYPOINT and HEALTHCHECK commands
directly, with the Dockerfile's ENV applied, on a loopback port, and stop the server with the
image's STOPSIGNAL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
ENVOY = ROOT / "deploy" / "envoy.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes.yaml"
PYPROJECT = ROOT / "pyproject.toml"

SERVER_SCRIPT = "textmend-server"
CLIENT_SCRIPT = "textmend"
COMPOSE_SERVICE = "textmend"
ENVOY_SERVICE = "envoy"

# After --grace runs out, textmend-server gives its workers this many more seconds before it
# kills them (see textmend_server.main); an orchestrator must wait at least grace + this.
SERVER_STOP_SLACK = 10.0
# Bounds that keep a broken server from hanging the suite; they assert nothing about speed.
STARTUP_LIMIT = 60.0
HEALTH_CALL_LIMIT = 30.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


# --- parsing helpers -------------------------------------------------------------------------


def parse_duration(value: str | int | float) -> float:
    """Seconds in a Docker, compose or Envoy duration (`30s`, `1m30s`, `0.1s`, bare seconds).

    >>> parse_duration("1m30s"), parse_duration("0.5s"), parse_duration(40)
    (90.0, 0.5, 40.0)
    """
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def parse_memory(value: str | int) -> int:
    """Bytes in a compose or Kubernetes memory quantity (`512m`, `2g`, `1Gi`, `256Mi`).

    >>> parse_memory("2g"), parse_memory("1Gi"), parse_memory("512m")
    (2147483648, 1073741824, 536870912)
    """
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?", value.strip().lower())
    if match is None:
        raise ValueError(f"not a memory size: {value!r}")
    number, prefix, _binary = match.groups()
    return int(float(number) * 1024 ** " kmgt".index(prefix or " "))


def parse_cpus(value: str | int | float) -> float:
    """CPUs in a compose (`"2"`, `0.5`) or Kubernetes (`500m`) quantity.

    >>> parse_cpus("2"), parse_cpus("500m"), parse_cpus(1.5)
    (2.0, 0.5, 1.5)
    """
    text = str(value).strip()
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute `$NAME` and `${NAME}` as Docker does (unknown names become empty).

    >>> expand("${IMAGE}:${TAG}-x $TAG", {"IMAGE": "python", "TAG": "3.11"})
    'python:3.11-x 3.11'
    """
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), ""),
        text,
    )


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and its arguments, joined."""

    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    """One build stage: its base image (ARGs expanded), its name, and its instructions."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        """Arguments of every instruction of the stage with this keyword."""
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        """Arguments of the instruction with this keyword that takes effect (the last one)."""
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base!r} has no {keyword}"
        return found[-1]

    def pairs(self, keyword: str) -> dict[str, str]:
        """The KEY=VALUE pairs of every ENV (or LABEL, ARG) instruction, the last one winning.

        The legacy `ENV KEY VALUE` form is understood too.
        """
        result: dict[str, str] = {}
        for args in self.all(keyword):
            words = shlex.split(args)
            if keyword == "ENV" and words and "=" not in words[0]:
                result[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                result[key] = value
        return result


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, args = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = []
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def dockerfile_stages(text: str) -> list[Stage]:
    """The build stages, each FROM's image expanded with the ARGs declared before any FROM."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    base, name = "", None
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(Stage(base, name, tuple(current)))
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            base = expand(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            current = []
        elif current is None:
            assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
            key, _, value = instruction.args.partition("=")
            global_args[key] = value.strip('"')
        else:
            current.append(instruction)
    assert current is not None, "the Dockerfile has no FROM"
    stages.append(Stage(base, name, tuple(current)))
    return stages


def exec_form(args: str) -> list[str]:
    """The argv of an exec-form instruction (`["a", "b"]`); fails on the shell form."""
    try:
        argv = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"not exec form (a JSON array), so no shell sits in between: {args}")
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), args
    return argv


@dataclass(frozen=True)
class Healthcheck:
    """A Dockerfile HEALTHCHECK: its options (`interval`, ...) and its command's argv."""

    options: dict[str, str]
    argv: list[str]


def parse_healthcheck(args: str) -> Healthcheck:
    """Split `--interval=10s ... CMD ["a", "b"]` into options and argv."""
    head, separator, command = args.partition("CMD")
    assert separator, f"HEALTHCHECK without CMD: {args}"
    options: dict[str, str] = {}
    for word in head.split():
        key, _, value = word.removeprefix("--").partition("=")
        options[key] = value
    return Healthcheck(options, exec_form(command.strip()))


# --- the files, parsed -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    """`pyproject.toml`, parsed."""
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    """The Dockerfile's build stages."""
    return dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def image(stages: list[Stage]) -> Stage:
    """The Dockerfile's final stage: what the image is made of."""
    return stages[-1]


@pytest.fixture(scope="module")
def image_env(image: Stage) -> dict[str, str]:
    """The ENV values baked into the image."""
    return image.pairs("ENV")


@pytest.fixture(scope="module")
def image_port(image_env: dict[str, str]) -> int:
    """The port the image's server listens on."""
    return int(image_env["TEXTMEND_PORT"])


@pytest.fixture(scope="module")
def healthcheck(image: Stage) -> Healthcheck:
    """The image's HEALTHCHECK."""
    return parse_healthcheck(image.last("HEALTHCHECK"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`docker-compose.yml`, parsed."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def envoy() -> dict[str, Any]:
    """`deploy/envoy.yaml`, parsed."""
    return yaml.safe_load(ENVOY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kubernetes() -> dict[str, dict[str, Any]]:
    """`deploy/kubernetes.yaml`'s documents, by kind."""
    documents = [d for d in yaml.safe_load_all(KUBERNETES.read_text(encoding="utf-8")) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents), "one document per kind expected"
    return by_kind


def _health_args(argv: list[str]) -> Any:
    """Parse a health check's argv with the client's own parser; it must be `textmend health`."""
    from textmend_client.cli import build_parser

    assert Path(argv[0]).name == CLIENT_SCRIPT, f"not the bundled client: {argv}"
    try:
        args = build_parser().parse_args(argv[1:])
    except Exception as exc:  # the client's parser raises instead of exiting
        pytest.fail(f"the client rejects {argv}: {exc}")
    assert args.command == "health", f"not the health subcommand: {argv}"
    return args


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


# --- Dockerfile ------------------------------------------------------------------------------


def test_image_is_built_in_stages_from_python_slim(stages: list[Stage]) -> None:
    """A builder stage makes wheels and installs only them (into a venv, or the final stage
    installs them); the final stage takes the result and nothing else."""
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    builder, final = stages[0], stages[-1]
    assert builder.name, "the builder stage needs a name for the final stage to refer to"
    assert any("pip wheel" in run for run in builder.all("RUN")), "the builder makes no wheels"
    pip_install = re.compile(r"\bpip(?: --python \S+)? install\b")
    installs = [
        run for stage in (builder, final) for run in stage.all("RUN") if pip_install.search(run)
    ]
    assert installs, "the wheels are installed nowhere"
    assert any(f"from={builder.name}" in run for run in final.all("RUN")) or any(
        f"--from={builder.name}" in copy for copy in final.all("COPY")
    ), "the final stage does not take the builder's result"
    for run in installs:
        assert "[dev]" not in run and "-e " not in run, f"dev or editable install: {run}"
        assert "--no-index" in run, f"the final stage must install only the built wheels: {run}"
    for run in final.all("RUN"):
        for compiler in ("build-essential", "gcc", "g++"):
            assert compiler not in run.split(), f"a compiler in the final image: {run}"


def test_entrypoint_is_the_server_console_script(image: Stage, pyproject: dict[str, Any]) -> None:
    """ENTRYPOINT runs the `[project.scripts]` server script, as PID 1 (exec form)."""
    scripts = pyproject["project"]["scripts"]
    assert exec_form(image.last("ENTRYPOINT")) == [SERVER_SCRIPT]
    assert SERVER_SCRIPT in scripts
    assert not image.all("CMD"), "a CMD would be passed to textmend-server as arguments"


def test_image_runs_as_a_non_root_user(image: Stage) -> None:
    user = image.last("USER").split(":")[0]
    assert user not in {"", "root", "0"}


def test_image_exposes_the_port_its_server_listens_on(image: Stage, image_port: int) -> None:
    exposed = {int(p.split("/")[0]) for args in image.all("EXPOSE") for p in args.split()}
    assert exposed == {image_port}


def test_image_stops_with_sigterm_and_sets_python_env(
    image: Stage, image_env: dict[str, str]
) -> None:
    """SIGTERM is what textmend-server drains on; unbuffered logs reach `docker logs` at once."""
    assert _signal(image.last("STOPSIGNAL")) == signal.SIGTERM
    assert image_env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert image_env.get("PYTHONUNBUFFERED") == "1"


def test_image_labels(image: Stage, pyproject: dict[str, Any]) -> None:
    """OCI labels name the project, and the default version is the project's."""
    arguments = {
        key: value.strip('"') for key, _, value in (a.partition("=") for a in image.all("ARG"))
    }
    labels = {k: expand(v, arguments) for k, v in image.pairs("LABEL").items()}
    assert labels.get("org.opencontainers.image.title") == pyproject["project"]["name"]
    assert labels.get("org.opencontainers.image.version") == pyproject["project"]["version"]
    assert labels.get("org.opencontainers.image.licenses") == "Apache-2.0"
    assert labels.get("org.opencontainers.image.description")


# A second valid value for each server setting, to see that its variable is really read.
_PROBES = {"host": ("127.0.0.2", "127.0.0.3"), "log_level": ("DEBUG", "ERROR")}


def _same_setting(parsed: object, text: str) -> bool:
    if isinstance(parsed, int | float):
        return parsed == float(text)
    return str(parsed).upper() == text.upper()


def test_image_env_configures_the_server(
    image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every TEXTMEND_* ENV is the twin of a server flag, and the server reads its value."""
    from textmend_server.main import build_parser

    settings = {k: v for k, v in image_env.items() if k.startswith("TEXTMEND_")}
    assert {"TEXTMEND_HOST", "TEXTMEND_PORT", "TEXTMEND_WORKERS"} <= set(settings)
    for key in [k for k in os.environ if k.startswith("TEXTMEND_")]:
        monkeypatch.delenv(key)
    for key, value in settings.items():
        dest = key.removeprefix("TEXTMEND_").lower()
        monkeypatch.setenv(key, value)
        parsed = vars(build_parser().parse_args([]))
        assert dest in parsed, f"{key} is not the twin of any textmend-server flag"
        assert _same_setting(parsed[dest], value), f"{key}={value} read as {parsed[dest]!r}"
        # The image's value may equal the default; a different value shows the name is right.
        probe = next(p for p in _PROBES.get(dest, ("3", "7")) if p != value)
        monkeypatch.setenv(key, probe)
        reparsed = vars(build_parser().parse_args([]))[dest]
        assert _same_setting(reparsed, probe), f"textmend-server ignores {key}"
        monkeypatch.setenv(key, value)


def test_healthcheck_is_the_bundled_client_health_command(
    healthcheck: Healthcheck, image_port: int, pyproject: dict[str, Any]
) -> None:
    """`textmend health` against the image's own port on loopback, within Docker's timeout."""
    assert healthcheck.argv[0] in pyproject["project"]["scripts"]
    args = _health_args(healthcheck.argv)
    host, port = _host_port(args.server)
    assert host in {"127.0.0.1", "::1", "localhost"}
    assert port == image_port
    for option in ("interval", "timeout", "retries", "start-period"):
        assert option in healthcheck.options, f"HEALTHCHECK --{option} is not set"
    assert args.timeout is not None, "without --timeout the client waits its 30 s default"
    assert args.timeout < parse_duration(healthcheck.options["timeout"])
    assert parse_duration(healthcheck.options["start-period"]) >= 10


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over slash-separated paths relative to the root."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore patterns leave path out of the build context (last match wins;
    a pattern that matches a directory also matches everything below it).

    >>> dockerignored("server/x.py", ["*", "!server/", "**/__pycache__"])
    False
    >>> dockerignored("server/__pycache__/x.pyc", ["*", "!server/", "**/__pycache__"])
    True
    """
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip().strip("/")
        regex = _ignore_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _copy_sources(stage: Stage) -> list[str]:
    """The build-context paths the stage's COPY instructions read (not `--from` copies)."""
    sources: list[str] = []
    for args in stage.all("COPY"):
        words = args.split()
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def test_dockerignore_keeps_build_inputs_and_drops_the_rest(stages: list[Stage]) -> None:
    patterns = _dockerignore_patterns()
    sources = _copy_sources(stages[0])
    assert sources, "the builder copies nothing from the build context"
    for source in sources:
        assert not dockerignored(source, patterns), f"COPY {source}, but .dockerignore drops it"
    assert not dockerignored("server/textmend_server/main.py", patterns)
    assert not dockerignored("client/textmend/v1/textmend_pb2.py", patterns)
    for path in (
        ".git/config",
        ".venv/bin/python",
        "tests/test_deploy.py",
        ".env",
        "server/textmend_server/__pycache__/main.cpython-311.pyc",
    ):
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"


def test_build_context_makes_a_wheel_with_both_commands(
    stages: list[Stage], pyproject: dict[str, Any], tmp_path: Path
) -> None:
    """What the builder stage copies is enough to build the wheel the image installs.

    Builds offline (no build isolation, no dependencies) from exactly the COPY sources, minus
    what .dockerignore drops, so a file the build needs but the Dockerfile forgets fails here.
    """
    setuptools = pytest.importorskip("setuptools")
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1):
        pytest.skip("building a wheel without the wheel package needs setuptools >= 70.1")
    patterns = _dockerignore_patterns()
    context = tmp_path / "context"
    context.mkdir()
    for source in _copy_sources(stages[0]):
        origin = ROOT / source
        if origin.is_dir():
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not dockerignored(relative, patterns):
                    (context / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, context / relative)
        else:
            shutil.copy2(origin, context / source)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("textmend-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        console = archive.read(entry_points).decode()
    for script, target in pyproject["project"]["scripts"].items():
        assert f"{script} = {target}" in console
    for module in (
        "textmend_server/main.py",
        "textmend_client/cli.py",
        "textmend/v1/textmend_pb2.py",
        "textmend/v1/textmend_pb2_grpc.py",
    ):
        assert module in names, f"{module} is missing from the wheel"
    # Every file of the packages (tables and other data included) must be installed, or the
    # image fails only when the code first reads it.
    for where in pyproject["tool"]["setuptools"]["packages"]["find"]["where"]:
        for path in sorted((context / where).rglob("*")):
            relative = path.relative_to(context / where).as_posix()
            if path.is_file() and "/" in relative:
                assert relative in names, f"{where}/{relative} is not packaged into the wheel"


# --- docker-compose.yml ----------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """One compose port mapping."""

    host_ip: str
    published: int | None
    target: int


def compose_ports(service: dict[str, Any]) -> list[Port]:
    """A compose service's port mappings, short (`[IP:]PUB:TARGET`) or long syntax."""
    ports: list[Port] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            ports.append(
                Port(entry.get("host_ip", ""), published and int(published), int(entry["target"]))
            )
            continue
        fields = str(entry).split("/")[0].rsplit(":", 2)
        target = int(fields[-1])
        published = int(fields[-2]) if len(fields) >= 2 and fields[-2] else None
        ports.append(Port(fields[0] if len(fields) == 3 else "", published, target))
    return ports


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose.get("services", {})
    assert name in services, f"docker-compose.yml has no {name!r} service"
    return services[name]


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_compose_runs_replicas_without_published_ports(compose: dict[str, Any]) -> None:
    textmend = _service(compose, COMPOSE_SERVICE)
    assert int(textmend["deploy"]["replicas"]) >= 2
    assert not textmend.get("ports"), "replicas must be reached through Envoy only"
    assert "container_name" not in textmend, "a fixed container name allows one replica only"


def test_compose_replicas_have_the_image_health_check(
    compose: dict[str, Any], healthcheck: Healthcheck, image_port: int
) -> None:
    textmend = _service(compose, COMPOSE_SERVICE)
    check = textmend["healthcheck"]
    assert not check.get("disable")
    test = check["test"]
    assert isinstance(test, list) and test[0] == "CMD", "exec form: no shell in the check"
    argv = test[1:]
    args = _health_args(argv)
    assert _host_port(args.server)[1] == int(
        _compose_env(textmend).get("TEXTMEND_PORT", image_port)
    )
    assert argv == healthcheck.argv, "compose and the Dockerfile check health differently"
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in check, f"healthcheck.{key} is not set"
    assert args.timeout < parse_duration(check["timeout"])


def test_compose_gives_replicas_time_to_drain(
    compose: dict[str, Any], image_env: dict[str, str]
) -> None:
    """Docker must not SIGKILL a replica while it is still finishing calls in flight."""
    textmend = _service(compose, COMPOSE_SERVICE)
    grace = float(_compose_env(textmend).get("TEXTMEND_GRACE", image_env["TEXTMEND_GRACE"]))
    assert textmend.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert parse_duration(textmend["stop_grace_period"]) >= grace + SERVER_STOP_SLACK


def test_compose_limits_resources_to_match_workers(
    compose: dict[str, Any], image_env: dict[str, str]
) -> None:
    """Each worker is a process that can use one CPU; more workers than CPUs only cost memory."""
    textmend = _service(compose, COMPOSE_SERVICE)
    limits = textmend["deploy"]["resources"]["limits"]
    workers = int(_compose_env(textmend).get("TEXTMEND_WORKERS", image_env["TEXTMEND_WORKERS"]))
    assert workers <= parse_cpus(limits["cpus"])
    assert parse_memory(limits["memory"]) >= workers * 256 * 1024**2


def test_compose_envoy_fronts_the_replicas(compose: dict[str, Any], image_port: int) -> None:
    envoy = _service(compose, ENVOY_SERVICE)
    repository, _, tag = envoy["image"].partition(":")
    assert repository == "envoyproxy/envoy"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"pin an Envoy release, not {tag!r}"
    ports = compose_ports(envoy)
    grpc = [p for p in ports if p.target == image_port]
    assert grpc and grpc[0].published == image_port, "Envoy must publish the gRPC port"
    admin = [p for p in ports if p.target == 9901]
    assert admin, "Envoy's admin port is not published"
    assert all(p.host_ip == "127.0.0.1" for p in admin), "Envoy admin must bind loopback only"
    condition = envoy["depends_on"][COMPOSE_SERVICE]["condition"]
    assert condition == "service_healthy"


def test_compose_mounts_the_envoy_config(compose: dict[str, Any]) -> None:
    envoy = _service(compose, ENVOY_SERVICE)
    mounts = {}
    for volume in envoy.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        mounts[target] = source
    command = envoy.get("command", [])
    command = shlex.split(command) if isinstance(command, str) else command
    config_path = "/etc/envoy/envoy.yaml"  # the image's default
    for flag in ("-c", "--config-path"):
        if flag in command:
            config_path = command[command.index(flag) + 1]
    assert config_path in mounts, f"Envoy reads {config_path}, which is not mounted"
    assert (COMPOSE.parent / mounts[config_path]).resolve() == ENVOY


# --- deploy/envoy.yaml -----------------------------------------------------------------------


def _hcm(envoy: dict[str, Any]) -> dict[str, Any]:
    (listener,) = envoy["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    managers = [
        f["typed_config"]
        for f in chain["filters"]
        if f["name"] == "envoy.filters.network.http_connection_manager"
    ]
    assert len(managers) == 1, "one HTTP connection manager expected"
    return managers[0]


def _clusters(envoy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in envoy["static_resources"]["clusters"]}


def _routes(envoy: dict[str, Any]) -> list[dict[str, Any]]:
    hosts = _hcm(envoy)["route_config"]["virtual_hosts"]
    return [route for host in hosts for route in host["routes"]]


def test_envoy_listens_where_compose_publishes(
    envoy: dict[str, Any], compose: dict[str, Any], image_port: int
) -> None:
    (listener,) = envoy["static_resources"]["listeners"]
    address = listener["address"]["socket_address"]
    assert address["address"] in {"0.0.0.0", "::"}
    assert address["port_value"] == image_port
    published_targets = {p.target for p in compose_ports(_service(compose, ENVOY_SERVICE))}
    assert address["port_value"] in published_targets
    admin = envoy["admin"]["address"]["socket_address"]["port_value"]
    assert admin == 9901 and admin in published_targets


def test_envoy_speaks_http2_to_clients(envoy: dict[str, Any]) -> None:
    manager = _hcm(envoy)
    assert manager["codec_type"] in {"AUTO", "HTTP2"}
    routers = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.router"]
    assert routers and manager["http_filters"][-1] is routers[0], "the router must come last"


def test_envoy_routes_all_grpc_to_a_defined_cluster(envoy: dict[str, Any]) -> None:
    routes = _routes(envoy)
    catch_all = [r for r in routes if r["match"].get("prefix") == "/"]
    assert catch_all, "no route for every gRPC method (prefix '/')"
    clusters = _clusters(envoy)
    for route in routes:
        assert route["route"]["cluster"] in clusters, f"undefined cluster in {route}"


def test_envoy_route_allows_large_documents_and_honours_deadlines(
    envoy: dict[str, Any],
) -> None:
    """A large document or a long stream must not be cut by a short proxy timeout, calls
    without a deadline must still be bounded, and a caller's gRPC deadline must be honoured."""
    route = _routes(envoy)[-1]["route"]
    timeout = parse_duration(route.get("timeout", "15s"))  # Envoy's default is 15 s
    duration = route.get("max_stream_duration", {})
    if timeout == 0:
        assert parse_duration(duration.get("max_stream_duration", "0s")) >= 300, (
            "route timeout disabled and no max_stream_duration: calls without deadline never end"
        )
    else:
        assert timeout >= 300
    assert "grpc_timeout_header_max" in duration, "the caller's grpc-timeout is ignored"
    assert parse_duration(_hcm(envoy).get("stream_idle_timeout", "300s")) >= 300


def test_envoy_retries_unavailable(envoy: dict[str, Any]) -> None:
    """A replica draining on SIGTERM answers UNAVAILABLE; repair is idempotent, so retry."""
    policy = _routes(envoy)[-1]["route"]["retry_policy"]
    assert "unavailable" in policy["retry_on"].split(",")
    assert int(policy["num_retries"]) >= 1


def test_envoy_cluster_targets_the_compose_service(
    envoy: dict[str, Any], compose: dict[str, Any], image_port: int
) -> None:
    cluster = _clusters(envoy)[_routes(envoy)[-1]["route"]["cluster"]]
    # Resolve every replica, and re-resolve on scaling: STRICT_DNS, or since Envoy 1.33 the DNS
    # cluster extension with one endpoint per address (the Cluster's own DNS fields are
    # deprecated).
    dns = cluster.get("cluster_type", {}).get("typed_config", {})
    if "type" in cluster:
        assert cluster["type"] == "STRICT_DNS"
    else:
        assert dns["@type"].endswith("envoy.extensions.clusters.dns.v3.DnsCluster"), dns
        assert not dns.get("all_addresses_in_single_endpoint"), "that is LOGICAL_DNS"
    assert cluster["lb_policy"] == "ROUND_ROBIN"
    endpoints = [
        lb["endpoint"]["address"]["socket_address"]
        for group in cluster["load_assignment"]["endpoints"]
        for lb in group["lb_endpoints"]
    ]
    assert endpoints
    replicas = _service(compose, COMPOSE_SERVICE)
    port = int(_compose_env(replicas).get("TEXTMEND_PORT", image_port))
    for address in endpoints:
        assert address["address"] == COMPOSE_SERVICE
        assert address["port_value"] == port


def test_envoy_cluster_speaks_http2_upstream(envoy: dict[str, Any]) -> None:
    for cluster in _clusters(envoy).values():
        key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        options = cluster["typed_extension_protocol_options"][key]
        assert options["@type"] == f"type.googleapis.com/{key}"
        assert "http2_protocol_options" in options["explicit_http_config"]


def test_envoy_health_checks_are_grpc(envoy: dict[str, Any]) -> None:
    for cluster in _clusters(envoy).values():
        checks = cluster.get("health_checks")
        assert checks, f"cluster {cluster['name']} is not health-checked"
        for check in checks:
            assert check["grpc_health_check"].get("service_name", "") == ""
            assert parse_duration(check["timeout"]) <= parse_duration(check["interval"])
            assert not {"http_health_check", "tcp_health_check"} & set(check)


def test_envoy_has_circuit_breakers(envoy: dict[str, Any]) -> None:
    for cluster in _clusters(envoy).values():
        thresholds = cluster["circuit_breakers"]["thresholds"]
        assert any(t.get("max_requests") and t.get("max_pending_requests") for t in thresholds)


def test_envoy_typed_configs_are_typed(envoy: dict[str, Any]) -> None:
    """Every typed_config names its API type, which Envoy needs to parse it."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "typed_config" in node:
                yield node["typed_config"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    configs = list(walk(envoy))
    assert configs
    for config in configs:
        assert str(config.get("@type", "")).startswith("type.googleapis.com/envoy."), config


# --- deploy/kubernetes.yaml ------------------------------------------------------------------


def _container(kubernetes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = kubernetes["Deployment"]["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "textmend"]
    return container


def _k8s_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env", [])}


def test_kubernetes_probes_ask_grpc_health_on_the_served_port(
    kubernetes: dict[str, dict[str, Any]], image_port: int
) -> None:
    container = _container(kubernetes)
    port = int(_k8s_env(container).get("TEXTMEND_PORT", image_port))
    assert port in {p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["grpc"]
        assert check["port"] == port, f"{probe} asks port {check['port']}, server uses {port}"
        assert check.get("service", "") == ""


def test_kubernetes_service_is_headless_and_selects_the_pods(
    kubernetes: dict[str, dict[str, Any]],
) -> None:
    """Headless: DNS answers with every pod, so dns:/// + round_robin reaches every replica."""
    service = kubernetes["Service"]["spec"]
    assert service["clusterIP"] == "None"
    labels = kubernetes["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    selector = kubernetes["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    names = {p["name"] for p in _container(kubernetes)["ports"]}
    for port in service["ports"]:
        target = port.get("targetPort", port["port"])
        assert target in names or target in {
            p["containerPort"] for p in _container(kubernetes)["ports"]
        }


def test_kubernetes_gives_pods_time_to_drain(
    kubernetes: dict[str, dict[str, Any]], image_env: dict[str, str]
) -> None:
    spec = kubernetes["Deployment"]["spec"]["template"]["spec"]
    container = _container(kubernetes)
    grace = float(_k8s_env(container).get("TEXTMEND_GRACE", image_env["TEXTMEND_GRACE"]))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    sleep = float(pre_stop[-1]) if pre_stop and pre_stop[0] == "sleep" else 0.0
    assert spec["terminationGracePeriodSeconds"] >= sleep + grace + SERVER_STOP_SLACK


def test_kubernetes_resources_match_workers(
    kubernetes: dict[str, dict[str, Any]], image_env: dict[str, str]
) -> None:
    container = _container(kubernetes)
    workers = int(_k8s_env(container).get("TEXTMEND_WORKERS", image_env["TEXTMEND_WORKERS"]))
    resources = container["resources"]
    assert parse_cpus(resources["requests"]["cpu"]) >= workers
    assert parse_memory(resources["requests"]["memory"]) >= workers * 256 * 1024**2
    assert parse_memory(resources["limits"]["memory"]) >= parse_memory(
        resources["requests"]["memory"]
    )
    user = kubernetes["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert user["runAsNonRoot"] is True


def test_deploy_files_name_the_project_version(
    kubernetes: dict[str, dict[str, Any]], compose: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    """The image tag that compose builds and Kubernetes runs is the version being released."""
    version = pyproject["project"]["version"]
    assert _service(compose, COMPOSE_SERVICE)["image"] == f"textmend:{version}"
    assert _container(kubernetes)["image"].rpartition(":")[2] == version


# --- the image's commands, run without Docker ------------------------------------------------


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _script(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the project (pip install -e .)")
    return path


def _signal(name: str) -> signal.Signals:
    """A STOPSIGNAL value (`SIGTERM` or `15`) as a signal."""
    return signal.Signals(int(name)) if name.isdigit() else signal.Signals[name.upper()]


def _run_health(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=HEALTH_CALL_LIMIT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, -1, "", f"timed out: {exc}")


@contextlib.contextmanager
def _server(environment: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(_script(SERVER_SCRIPT))], env=environment, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("workers", [1, 2])
def test_image_entrypoint_serves_passes_its_healthcheck_and_stops_on_sigterm(
    workers: int,
    image: Stage,
    image_env: dict[str, str],
    image_port: int,
    healthcheck: Healthcheck,
    tmp_path: Path,
) -> None:
    """Run ENTRYPOINT with the image's ENV (host and port moved to a free loopback port), poll
    the HEALTHCHECK command until it passes, then STOPSIGNAL: the server must exit 0, after
    which the same health check must fail."""
    port = _free_loopback_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TEXTMEND_")}
    environment |= image_env
    environment |= {
        "TEXTMEND_HOST": "127.0.0.1",
        "TEXTMEND_PORT": str(port),
        "TEXTMEND_WORKERS": str(workers),
    }
    health = [str(_script(healthcheck.argv[0])), *healthcheck.argv[1:]]
    target = f"127.0.0.1:{image_port}"
    assert target in health, f"the health check does not name {target}: {health}"
    health[health.index(target)] = f"127.0.0.1:{port}"
    stop = _signal(image.last("STOPSIGNAL"))
    log = tmp_path / "server.log"

    with _server(environment, log) as process:
        deadline = time.monotonic() + STARTUP_LIMIT
        result = _run_health(health)
        while result.returncode != 0:
            if process.poll() is not None:
                pytest.fail(
                    f"textmend-server exited with {process.returncode} before serving:\n"
                    + log.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the health check never passed; last: {result.stdout}{result.stderr}\n"
                    + log.read_text(errors="replace")
                )
            time.sleep(0.5)
            result = _run_health(health)
        assert result.stdout.strip() == "SERVING"

        process.send_signal(stop)
        grace = float(image_env["TEXTMEND_GRACE"])
        try:
            code = process.wait(timeout=grace + SERVER_STOP_SLACK + 30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"textmend-server ignored {stop.name}:\n" + log.read_text(errors="replace"))
        assert code == 0, log.read_text(errors="replace")

    after = _run_health(health)
    assert after.returncode != 0, "the health check passes with no server running"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "abc"], "argument --workers: expected a whole number, not 'abc'"),
        (["--port", "http"], "argument --port: expected a whole number, not 'http'"),
        (["--stream-idle-seconds", "1m"], "expected a number, not '1m'"),
        (["--workers", "0"], "argument --workers: must be at least 1, not 0"),
    ],
)
def test_a_bad_server_flag_says_what_it_expects(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not argparse's `invalid _positive_int value`, which names a function of ours."""
    from textmend_server.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err
