"""Smoke-test rotator's container image with podman, as a user would run it (called by .ci/image).

Usage: python3 .ci/image_smoke.py IMAGE VERSION. Standard library only. Every container runs with
a read-only root filesystem, a tmpfs /tmp, no capabilities, no new privileges, and as the user the
image declares (never --user: the image must get that right by itself). The fakes run from the
same image in a second container; both use the host's network, on loopback only. Exit 0, or 1
naming the first check that failed.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any


UID = "10001"
STATE = "/var/lib/rotator"
CONFIG = "/etc/rotator/rotator.yaml"
#: As a user runs it (README). podman adds a tmpfs on /tmp by itself under --read-only unless
#: told not to (Docker does not): off, so that --tmpfs /tmp is what the runs below ask for.
HARDENED = [
    "--runtime", "runc", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--no-healthcheck",
    # podman's own defaults are higher than this machine allows; Docker's daemon sets these itself.
    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
]  # fmt: skip
TMPFS = ["--tmpfs", "/tmp"]
#: A GitLab token's value (not the bare prefix, which docs and the redaction code name).
TOKEN = re.compile(rb"\bgl(pat|ptt|dt|rt|ft|soat|cbt|imt|agent|oas)-[A-Za-z0-9_\-.]{20,}")
#: A PEM private key: the header and a line of its body (a library may hold the header alone).
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}")
#: File names that hold state or secrets: never in a layer.
STATE_OR_SECRET = re.compile(
    r"(\.db|\.db-(wal|shm|journal)|\.sqlite\d?(-\w+)?|\.key|\.p12|\.pfx)$|(^|/)\.env(\.[^/]*)?$"
    r"|(^|/)rotator\.ya?ml$|(^|/)\.netrc$|(^|/)\.git-credentials$"
)
#: A name that says "a token or a secret" — outside code, whose modules may well be called token.py.
SECRET_NAME = re.compile(r"token|secret|credential", re.IGNORECASE)
CODE = re.compile(r"\.(py|pyc|pyi|so|h|rb|pl|pm|sh)$|/__pycache__/")


class SmokeError(Exception):
    """A check failed: the message says which and what was seen."""


STARTED = time.monotonic()


def ok(text: str) -> None:
    """One progress line, with the seconds since the smoke test started."""
    print(f"   ok [{time.monotonic() - STARTED:3.0f}s]: {text}", flush=True)


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``, captured; a non-zero exit is a SmokeError unless ``check`` is false."""
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise SmokeError(
            f"podman {' '.join(args[:3])} ... exited {done.returncode}: {done.stderr.strip()[-800:]}"
        )
    return done


def run(
    image: str, *args: str, options: tuple[str, ...] = (), tmpfs: bool = True
) -> subprocess.CompletedProcess[str]:
    """One container to completion: ``podman run --rm HARDENED [--tmpfs /tmp] OPTIONS IMAGE ARGS``."""
    return podman("run", "--rm", *HARDENED, *(TMPFS if tmpfs else []), *options, image, *args, check=False)


# The image's configuration and layers.


def check_config(image: str, version: str) -> None:
    """User, version label, entrypoint, command and HEALTHCHECK as the Dockerfile declares them."""
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    if config.get("User") != f"{UID}:{UID}":
        raise SmokeError(f"the image runs as {config.get('User')!r}, not {UID}:{UID}")
    label = config.get("Labels", {}).get("org.opencontainers.image.version")
    if label != version:
        raise SmokeError(f"label org.opencontainers.image.version is {label!r}, the package is {version}")
    if config.get("Entrypoint") != ["rotator"] or config.get("Cmd") != ["daemon"]:
        raise SmokeError(f"entrypoint {config.get('Entrypoint')} and command {config.get('Cmd')}")
    health = (inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test")
    if health != ["CMD", "rotator", "healthcheck"]:
        raise SmokeError(f"HEALTHCHECK is {health} (built without --format docker?)")
    ok(f"user {config['User']}, label version {label}, rotator daemon, HEALTHCHECK rotator healthcheck")


def show_layers(image: str) -> None:
    """The image's size and its layers, newest first."""
    size = json.loads(podman("image", "inspect", image).stdout)[0]["Size"]
    print(f"   image size: {size / 1e6:.0f} MB (the stand-in base included)")
    history = podman("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image).stdout
    for line in history.splitlines():
        layer_size, _, created_by = line.partition("\t")
        print(f"   {layer_size:>9}  {' '.join(created_by.split())[:110]}", flush=True)


def _layer_problems(layer: tarfile.TarFile) -> list[str]:
    problems: list[str] = []
    for member in layer:
        path = "/" + member.name.removeprefix("./")
        name = PurePosixPath(path).name
        if path.startswith(STATE + "/") and not name.startswith(".wh."):
            problems.append(f"{path}: state baked into the image")
        elif STATE_OR_SECRET.search(path):
            problems.append(f"{path}: looks like a state or secret file")
        elif SECRET_NAME.search(name) and not CODE.search(path) and member.isfile():
            problems.append(f"{path}: named like a secret")
        elif member.isfile() and member.size <= 4_000_000:
            data = layer.extractfile(member)
            content = data.read() if data else b""
            if TOKEN.search(content):
                problems.append(f"{path}: holds a GitLab token value")
            elif PRIVATE_KEY.search(content) and not content.startswith(b"\x7fELF"):
                # A library's built-in self-test vectors (GnuTLS has some) are no key file.
                problems.append(f"{path}: holds a private key")
    return problems


def check_layers(image: str, folder: Path) -> None:
    """No layer holds a state file, a secret-looking file, a token value or a private key."""
    archive = folder / "image.tar"
    podman("save", "--format", "docker-archive", "--output", str(archive), image, timeout=300)
    problems: list[str] = []
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        layers = manifest[0]["Layers"]
        for name in layers:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                problems += _layer_problems(layer)
    archive.unlink()
    if problems:
        raise SmokeError("secrets or state in the image's layers:\n      " + "\n      ".join(problems[:20]))
    ok(f"{len(layers)} layers scanned: no state file, secret-looking file, token value or private key")


# Running it.


def check_version(image: str, version: str) -> None:
    """``rotator --version`` is the package's version (and the label's: check_config)."""
    done = run(image, "--version", options=("--network", "none"))
    if done.returncode != 0 or done.stdout.strip() != f"rotator {version}":
        raise SmokeError(f"--version: exit {done.returncode}, {done.stdout.strip()!r} (package {version})")
    ok(f"--version: {done.stdout.strip()}")


def check_demo(image: str) -> None:
    """``rotator demo`` passes with no network but loopback."""
    done = run(image, "demo", options=("--network", "none"))
    last = done.stdout.strip().splitlines()[-1:] or [""]
    if done.returncode != 0 or not last[0].startswith("demo passed"):
        raise SmokeError(f"demo: exit {done.returncode}: {last[0]} {done.stderr.strip()[-400:]}")
    ok(f"demo: {last[0]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback, our own daemon
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def _until(what: str, probe: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise SmokeError(f"timed out after {seconds:.0f}s waiting for {what}")
        time.sleep(0.3)


class World:
    """The fakes in one container, a config for them, a state volume; the daemon in another container."""

    def __init__(self, image: str, folder: Path) -> None:
        """Names unique to this run; nothing started yet."""
        self.image, self.folder = image, folder
        tag = f"rotator-ci-{os.getpid()}"
        self.fakes, self.daemon, self.volume = f"{tag}-fakes", f"{tag}-daemon", f"{tag}-state"
        self.port = _free_port()
        self.env: dict[str, str] = {}

    def start_fakes(self) -> None:
        """``rotator fakes --port 0 --json`` from the same image; its seed becomes the config."""
        podman("run", "--detach", "--name", self.fakes, *HARDENED, *TMPFS, "--network", "host",
               self.image, "fakes", "--port", "0", "--json")  # fmt: skip
        seed: dict[str, Any] = {}

        def printed() -> bool:
            lines = podman("logs", self.fakes).stdout.splitlines()
            if lines and lines[0].startswith("{"):
                seed.update(json.loads(lines[0]))
            return bool(seed)

        _until("the fakes' seed", printed)
        paths, connections = list(seed["project_paths"]), list(seed["connection_ids"])
        held = list(seed["adopt_token_ids"])
        config = {
            "gitlab": {"url": seed["gitlab_url"]},
            "infisical": {"url": seed["infisical_url"]},
            "state": {"url": f"sqlite:///{STATE}/state.db"},
            "daemon": {"listen": f"127.0.0.1:{self.port}"},
            "defaults": {"grace": "1h", "token": {"scopes": ["api"], "lifetime": "30d"}},
            "targets": [
                {
                    "name": f"{p.rsplit('/', 1)[-1]}-deploy",
                    "project": p,
                    "connection_id": c,
                    "adopt_token_id": t,
                }
                for p, c, t in zip(paths, connections, held, strict=True)
            ],
        }
        (self.folder / "rotator.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
        (self.folder / "rotator.yaml").chmod(0o644)
        # Passed to podman by name (-e NAME), from its environment: no value on any command line.
        self.env = {
            "ROTATOR_GITLAB_TOKEN": str(seed["manager_token"]),
            "ROTATOR_INFISICAL_CLIENT_ID": str(seed["infisical_client_id"]),
            "ROTATOR_INFISICAL_CLIENT_SECRET": str(seed["infisical_client_secret"]),
        }
        ok(f"fakes: GitLab {seed['gitlab_url']}, Infisical {seed['infisical_url']}")

    def _options(self) -> list[str]:
        names = [word for name in self.env for word in ("--env", name)]
        mounts = [
            "--volume",
            f"{self.volume}:{STATE}",
            "--volume",
            f"{self.folder / 'rotator.yaml'}:{CONFIG}:ro",
        ]
        return ["--network", "host", *mounts, *names]

    def podman_env(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` with the credentials in its environment."""
        return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                              check=False, env={**os.environ, **self.env})  # fmt: skip

    def refused_without_tmp(self) -> None:
        """The daemon without a writable /tmp: exit 2 naming TMPDIR, nothing written to the volume."""
        done = self.podman_env("run", "--rm", *HARDENED, *self._options(), self.image)
        if done.returncode != 2 or "TMPDIR: /tmp: cannot write a scratch file" not in done.stderr:
            raise SmokeError(
                f"daemon without --tmpfs /tmp: exit {done.returncode}: {done.stderr.strip()[-400:]}"
            )
        ok("daemon without --tmpfs /tmp: exit 2, TMPDIR named, the state volume untouched")

    def run_daemon(self) -> str:
        """Start the image's default command; wait for /healthz and /readyz; return the base URL."""
        done = self.podman_env(
            "run", "--detach", "--name", self.daemon, *HARDENED, *TMPFS, *self._options(), self.image
        )
        if done.returncode != 0:
            raise SmokeError(f"podman run daemon: {done.stderr.strip()[-400:]}")
        base = f"http://127.0.0.1:{self.port}"
        for route in ("/healthz", "/readyz"):

            def answers(url: str = base + route) -> bool:
                return self._alive() and _get(url)[0] == 200

            _until(f"GET {route} 200", answers)
        # The process as the host sees it: the user the image declares, whoever started it.
        pid = podman("inspect", "--format", "{{.State.Pid}}", self.daemon).stdout.strip()
        status = Path(f"/proc/{pid}/status").read_text()
        ids = {
            line.split(":")[0]: line.split()[1:]
            for line in status.splitlines()
            if line[:4] in {"Uid:", "Gid:"}
        }
        if ids != {"Uid": [UID] * 4, "Gid": [UID] * 4}:
            raise SmokeError(f"the daemon runs as {ids}, not uid and gid {UID}")
        ok(f"GET /healthz 200, GET /readyz 200; the daemon runs as uid {UID}, gid {UID}")
        return base

    def _alive(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Status}}", self.daemon, check=False).stdout.strip()
        if state != "running":
            logs = podman("logs", self.daemon, check=False)
            raise SmokeError(f"the daemon is {state or 'gone'}: {(logs.stdout + logs.stderr).strip()[-800:]}")
        return True

    def stop_daemon(self) -> None:
        """SIGTERM; the daemon must exit 0, and its logs hold no token value."""
        podman("kill", "--signal", "TERM", self.daemon)
        code = podman("wait", self.daemon, timeout=60).stdout.strip()
        logs = podman("logs", self.daemon)
        podman("rm", self.daemon)
        if code != "0":
            raise SmokeError(
                f"the daemon exited {code} on SIGTERM: {(logs.stdout + logs.stderr).strip()[-800:]}"
            )
        if TOKEN.search((logs.stdout + logs.stderr).encode()):
            raise SmokeError("the daemon's logs hold a token value")
        ok("SIGTERM: exit 0; no token value in its logs")

    def history(self) -> list[dict[str, object]]:
        """``rotator history --json`` on the state volume, from a one-off container."""
        done = self.podman_env(
            "run", "--rm", *HARDENED, *TMPFS, *self._options(), self.image, "history", "--json"
        )
        if done.returncode != 0:
            raise SmokeError(f"history --json: exit {done.returncode}: {done.stderr.strip()[-400:]}")
        rows: list[dict[str, object]] = json.loads(done.stdout)
        return rows

    def cleanup(self) -> None:
        """Remove both containers and the volume, whatever state they are in."""
        for name in (self.daemon, self.fakes):
            podman("rm", "--force", "--time", "5", name, check=False)
        podman("volume", "rm", "--force", self.volume, check=False)
        # And the anonymous volumes the image's VOLUME gave the one-off containers (this store only).
        podman("volume", "prune", "--force", check=False)


def _rotated(metrics: str, target: str) -> float:
    """``rotator_rotations_total{outcome="succeeded", target=TARGET}``, 0 if absent."""
    for line in metrics.splitlines():
        name, _, rest = line.partition("{")
        labels, _, value = rest.partition("} ")
        if name == "rotator_rotations_total" and {'outcome="succeeded"', f'target="{target}"'} <= set(
            labels.split(",")
        ):
            return float(value)
    return 0.0


def check_daemon(world: World) -> None:
    """Rotates each target once; SIGTERM exits 0; a restart on the same volume rotates nothing."""
    world.start_fakes()
    world.refused_without_tmp()
    base = world.run_daemon()
    targets = ("app-deploy", "api-deploy")
    _until(
        "a rotation of each target in /metrics",
        lambda: all(_rotated(_get(base + "/metrics")[1], t) == 1 for t in targets),
    )
    ok("/metrics: rotator_rotations_total{outcome=succeeded} 1 for " + " and ".join(targets))
    world.stop_daemon()
    base = world.run_daemon()
    # The first checks run at start (nothing is due now); give them time to act if they were to.
    time.sleep(3)
    again = [_rotated(_get(base + "/metrics")[1], t) for t in targets]
    world.stop_daemon()
    rows = world.history()
    if any(again) or sorted(str(row.get("target")) for row in rows) != sorted(targets):
        raise SmokeError(f"after a restart on the same volume: rotations {again}, history {rows}")
    ok("restart on the same volume: nothing rotated; history --json: one rotation per target")


def main() -> int:
    """Run every check in order; stop at the first failure."""
    image, version = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="rotator-image-smoke-") as tmp:
        world = World(image, Path(tmp))
        try:
            check_config(image, version)
            show_layers(image)
            check_layers(image, Path(tmp))
            check_version(image, version)
            check_demo(image)
            check_daemon(world)
        except (SmokeError, subprocess.TimeoutExpired) as failure:
            print(f"image smoke test: FAILED: {failure}", file=sys.stderr, flush=True)
            return 1
        finally:
            world.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
