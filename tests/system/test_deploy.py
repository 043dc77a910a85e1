"""Deployment files: what can be checked without a Docker engine or systemd."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from support import free_port, wait_until
from support.environment import PROCESS_REDIS_URL, TEST_JWT_SECRET

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
INSTALL_ROOT = "/opt/downloads"


def program_exists(argv):
    return (BIN / argv[0]).exists() or shutil.which(argv[0]) is not None


def test_compose_file_defines_the_services_with_health_checks_and_a_migration_step():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "worker", "redis", "postgres", "migrate"}
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    for name in ("api", "worker", "redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["flask", "--app", "wsgi", "db", "upgrade"]
    for name in ("api", "worker", "migrate"):
        command = services[name]["command"]
        assert program_exists(command), command
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["worker"]["command"][:2] == ["dramatiq", "actors"]
    assert (ROOT / "actors" / "__init__.py").exists() and (ROOT / "wsgi.py").exists()
    assert services["api"]["command"][-1] == "deploy/gunicorn.conf.py"
    assert services["api"]["environment"]["DATABASE_URL"].startswith("postgresql://")
    # The API serves the files the worker writes: both see the same STORAGE_DIR volume.
    storage = services["api"]["environment"]["STORAGE_DIR"]
    assert services["worker"]["environment"]["STORAGE_DIR"] == storage
    assert services["api"]["volumes"] == services["worker"]["volumes"] and storage.startswith("/var/lib/downloads")
    # Compose refuses to start without JWT_SECRET (`${VAR:?message}`) rather than run with none.
    for name in ("api", "worker", "migrate"):
        assert services[name]["environment"]["JWT_SECRET"].startswith("${JWT_SECRET:?set JWT_SECRET"), name


def test_no_deployment_file_carries_a_jwt_secret():
    """The secret comes from the operator (environment, EnvironmentFile, platform settings), never from here."""
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix != ".md":
            for line in path.read_text().splitlines():
                if line.lstrip().startswith("#"):
                    continue
                assert not re.search(r"(^|\s|=)JWT_SECRET\s*[=:]\s*(?!\$\{JWT_SECRET:\?)\S", line), (path, line)


def test_dockerfile_copies_what_exists_and_runs_as_a_non_root_user():
    lines = [
        line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")
    ]
    copies = [words[1:-1] for words in lines if words[0] == "COPY" and not words[1].startswith("--from")]
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert lines[-1][0] == "CMD" and "gunicorn" in lines[-1][1]


def unit_commands(unit):
    """ExecStartPre and ExecStart of a unit, with /opt/downloads read as this checkout."""
    text = (DEPLOY / "systemd" / unit).read_text()
    commands = {}
    for key in ("ExecStartPre", "ExecStart"):
        match = re.search(rf"^{key}=(.+)$", text, re.MULTILINE)
        if match:
            line = match.group(1).replace(f"{INSTALL_ROOT}/.venv/bin/", f"{BIN}/").replace(INSTALL_ROOT, str(ROOT))
            commands[key] = shlex.split(line)
    assert "KillMode=mixed" in text
    return commands


@pytest.fixture
def unit_env(database_url, tmp_path):
    port = free_port()
    return port, {
        **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db")},
        "DATABASE_URL": database_url,
        "REDIS_URL": PROCESS_REDIS_URL,
        "JWT_SECRET": TEST_JWT_SECRET,
        "BIND": f"127.0.0.1:{port}",
        "dramatiq_prom_db": str(tmp_path / "metrics"),
        "dramatiq_prom_port": str(free_port()),
    }


@pytest.mark.parametrize(
    "unit, command_line",
    [
        ("downloads-api.service", "ExecStart"),
        ("downloads-api.service", "ExecStartPre"),
        ("downloads-worker.service", "ExecStart"),
    ],
)
def test_systemd_units_refuse_to_start_without_jwt_secret(unit_env, tmp_path, unit, command_line):
    """A production start that forgot JWT_SECRET exits at once, saying so, instead of signing with a known one."""
    _, env = unit_env
    env = {name: value for name, value in env.items() if name != "JWT_SECRET"}
    env["JWT_SECRET_FILE"] = str(tmp_path / "no-secret-here")  # not this checkout's make run secret
    command = unit_commands(unit)[command_line]
    started = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    output = started.stdout + started.stderr
    assert "JWT_SECRET is not set" in output and "refusing to start" in output, output
    assert "Traceback" not in output, output


def run_until_ready(command, env, ready, tmp_path, name):
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: ready() or (process.poll() is not None and pytest.fail(log.read_text())),
            timeout=30,
            interval=0.1,
            message=name,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()


def test_systemd_api_unit_migrates_then_serves(unit_env, tmp_path):
    port, env = unit_env
    commands = unit_commands("downloads-api.service")
    subprocess.run(commands["ExecStartPre"], cwd=ROOT, env=env, check=True, capture_output=True)

    def ready():
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:  # refused, or accepted by a master whose workers still boot
            return False

    run_until_ready(commands["ExecStart"], env, ready, tmp_path, "api")


def test_systemd_worker_unit_boots_and_stops(unit_env, tmp_path):
    _, env = unit_env
    command = unit_commands("downloads-worker.service")["ExecStart"]
    assert command[1:] == ["actors", "--processes", "1", "--threads", "2"]
    run_until_ready(
        command, env, lambda: "Worker process is ready" in (tmp_path / "worker.log").read_text(), tmp_path, "worker"
    )


def test_procfile_programs_exist_and_release_migrates(tmp_path):
    processes = dict(line.split(": ", 1) for line in (DEPLOY / "Procfile").read_text().splitlines() if line)
    assert set(processes) == {"release", "web", "worker"}
    for command in processes.values():
        assert program_exists(shlex.split(command)), command
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'release.sqlite3'}",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    result = subprocess.run(shlex.split(processes["release"]), cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "001_initial" in result.stderr
