"""Services the slow infrastructure tests start: PostgreSQL, an ``mlflow server``, Ray nodes.

Every service binds 127.0.0.1 on a free port, runs in its own process group and is stopped by
its process id (:func:`stop`). A helper raises :class:`Missing` (the tests skip with its text)
when the machine cannot run the service.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


class Missing(Exception):
    """The service cannot run here; the message says what is missing."""


def private_network_problem(why: str, commands: tuple[str, ...], install: str) -> str | None:
    """Why a private network namespace (``unshare -n``, loopback only) cannot hold a test's
    services here, or None. ``why`` says what needs it; ``commands`` must be on PATH besides
    ``unshare`` and ``ip`` (``install`` says how to get them)."""
    if os.geteuid() != 0:
        return f"needs root for a private network namespace (unshare -n): {why}"
    missing = [c for c in ("unshare", "ip", *commands) if shutil.which(c) is None]
    if missing:
        return f"missing {', '.join(missing)} ({install})"
    if subprocess.run(["unshare", "-n", "true"], check=False, capture_output=True).returncode != 0:
        return "cannot create a network namespace here (unshare -n)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s\n{tail}")


def answers_health(base_url: str) -> bool:
    """Whether the MLflow server at ``base_url`` (``mlflow server`` or ``nnexp.ui``) answers
    ``/health`` with 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the service's process group (its id is the service's PID), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class Postgres:
    """A PostgreSQL cluster in a temporary folder, password (scram-sha-256) authentication only."""

    user, password, database = "nnexp", "pg-secret-4711", "mlflow"

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise Missing("PostgreSQL server not installed (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Missing("running as root without a 'postgres' user to run PostgreSQL as") from None
        self.folder = Path(tempfile.mkdtemp(prefix="nnexp-pg-"))
        if os.geteuid() == 0:
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Postgres":
        data, pwfile, log = self.folder / "data", self.folder / "pw", self.folder / "log"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(data), "-U", self.user,
                                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                _as_postgres([str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                              "-p", str(self.port), "-k", str(self.folder)]),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_open(self.port), 60, "PostgreSQL", self.proc, log)
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run([str(self.bin.parent / "bin" / "createdb") if (self.bin / "createdb").exists()
                        else "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                        self.database], check=True, env=env, capture_output=True, timeout=60)
        return self

    def uri(self, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)


class MlflowServer:
    """``mlflow server --app-name basic-auth`` on a backend store, artifacts proxied to a folder."""

    admin, admin_password = "admin", "nnexp-admin-pw-8134"

    def __init__(self, backend_uri: str, folder: Path, workers: int = 2):
        self.backend_uri, self.folder, self.workers = backend_uri, folder, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = folder / "artifacts"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "MlflowServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        ini = self.folder / "basic_auth.ini"
        ini.write_text("[mlflow]\ndefault_permission = READ\n"
                       f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
                       f"admin_username = {self.admin}\nadmin_password = {self.admin_password}\n"
                       "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        log = self.folder / "server.log"
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_DISABLE_TELEMETRY": "true",
               # CSRF protection of the auth app: one key shared by the server's workers
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                 "--backend-store-uri", self.backend_uri, "--artifacts-destination", str(self.artifacts),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.folder, start_new_session=True)
        wait_until(self.healthy, timeout, "mlflow server", self.proc, log)
        return self

    def healthy(self) -> bool:
        return answers_health(self.url)

    def client_env(self) -> dict[str, str]:
        """What a job needs to log to this server: its URI and the user's credentials."""
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": self.admin,
                "MLFLOW_TRACKING_PASSWORD": self.admin_password, "MLFLOW_DISABLE_TELEMETRY": "true"}

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class RayCluster:
    """A Ray head with no CPUs and one worker node, each started in its own working folder.

    Token authentication (Ray 2.60's ``RAY_AUTH_MODE=token``) with a token file of this cluster
    only, so nothing is read from or written to ``~/.ray``. ``ray start --block`` keeps each
    node's processes under the PID the test stops.
    """

    def __init__(self, folder: Path, worker_cpus: int = 2, worker_env: dict | None = None):
        if shutil.which("ray") is None and not (Path(sys.executable).parent / "ray").exists():
            raise Missing("Ray not installed (pip install -e '.[ray]')")
        # a short path: Ray's Unix sockets live under the temp folder (108-byte limit)
        self.temp = Path(tempfile.mkdtemp(prefix="nnexp-ray-", dir="/tmp"))
        self.folder, self.worker_cpus, self.worker_env = folder, worker_cpus, worker_env or {}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = self.temp / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.nodes: list[subprocess.Popen] = []

    def _ray(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        cwd = self.folder / name
        cwd.mkdir(parents=True, exist_ok=True)
        ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
        with open(self.folder / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([ray, "start", "--block", "--disable-usage-stats", *args], cwd=cwd,
                                    env={**env, **self.auth_env}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start(self) -> "RayCluster":
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
        head = self._ray("head", ["--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                                  "--num-cpus=0", "--include-dashboard=false",
                                  f"--temp-dir={self.temp}"], base)
        wait_until(lambda: port_open(self.port), 90, "Ray head", head, self.folder / "head.log")
        self._ray("worker", [f"--address={self.address}", "--node-ip-address=127.0.0.1",
                             f"--num-cpus={self.worker_cpus}"], {**base, **self.worker_env})
        wait_until(self._worker_joined, 90, "Ray worker node", self.nodes[-1], self.folder / "worker.log")
        return self

    def _worker_joined(self) -> bool:
        probe = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
                 "print(int(ray.cluster_resources().get('CPU', 0)))" % self.address)
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, **self.auth_env}, timeout=60)
        return result.stdout.strip().endswith(str(self.worker_cpus))

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            stop(proc, grace=20)
        shutil.rmtree(self.temp, ignore_errors=True)
