# rotator's container image. Build it from the repository's root, tagged with the package's version
# (deploy/kubernetes/README.md, "The image", has the buildah command and the push too):
#   VERSION=$(python3 -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
#   docker build --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" -t "rotator:$VERSION" .
# with BASE_IMAGE the default below (python:3.11.11-slim-bookworm) or your mirror's copy of it.
#
# Two stages on one pinned base image. The first builds rotator's wheel from the source tree; the
# second installs the locked dependencies (requirements.lock, every file pinned by hash) and that
# wheel into a virtual environment at /opt/rotator. Only the wheel and the lock cross into the
# final image, never the source tree; `.ci/install-check` repeats this install without a container
# and `.ci/image` builds and runs the image itself.
#
# Run it with a read-only root filesystem, as the non-root user it declares (one command, shown
# on several lines):
#   docker run --read-only --tmpfs /tmp -v rotator-state:/var/lib/rotator -p 8080:8080
#     -v "$PWD/rotator.yaml:/etc/rotator/rotator.yaml:ro"
#     -e ROTATOR_GITLAB_TOKEN -e ROTATOR_INFISICAL_CLIENT_ID -e ROTATOR_INFISICAL_CLIENT_SECRET
#     "rotator:$VERSION"
# The configuration must put the journal on the state volume, by an absolute path:
#   state: {url: "sqlite:////var/lib/rotator/state.db"}
# (a relative sqlite path is resolved against the config file's folder, which is read-only here).
# Secrets come from the environment at run time (or *_FILE variables); none is in any layer.

# The base image, pinned by tag: one for both stages, so that the venv built for one interpreter
# runs on the same interpreter. A mirror or an internal registry replaces it with
# `--build-arg BASE_IMAGE=registry.example.com/python:3.11.11-slim-bookworm`; any Debian-like
# image with python (3.11+, with venv and pip), groupadd and useradd will do. Pin by digest as
# well where builds must be bit-for-bit reproducible: python:3.11.11-slim-bookworm@sha256:...
ARG BASE_IMAGE=python:3.11.11-slim-bookworm

FROM ${BASE_IMAGE} AS build

# No bytecode or pip cache in this stage either: nothing here ships, but it keeps the layer small.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what setuptools reads: pyproject.toml (metadata, packages), README.md (`readme =`) and the
# package. Copying named paths, not `.`, means a stray local file (a config with a token, a state
# database) can never end up in a layer even if .dockerignore misses it.
COPY pyproject.toml README.md ./
COPY rotator/ rotator/
# --no-deps: this stage builds rotator's own wheel only; the final stage installs the locked
# dependencies. SOURCE_DATE_EPOCH (the commit's time: `git log -1 --format=%ct`) stamps every
# file in the wheel, so two builds of one commit give the same wheel, byte for byte.
ARG SOURCE_DATE_EPOCH
RUN python -m pip wheel --no-deps --wheel-dir /wheels .


FROM ${BASE_IMAGE}

# A fixed, numeric, non-root user and group. Fixed ids let a Kubernetes securityContext
# (runAsUser/fsGroup 10001) and a volume's ownership agree with the image; no home, no shell.
RUN groupadd --system --gid 10001 rotator \
 && useradd --system --uid 10001 --gid rotator --no-create-home \
            --home-dir /var/lib/rotator --shell /usr/sbin/nologin rotator \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/rotator

# The dependencies first, from the lock alone (a layer that stays cached until the lock changes):
# --require-hashes installs exactly the files the lock names, or fails. Refresh the lock with the
# command at its top (uv pip compile ...).
COPY requirements.lock /tmp/requirements.lock
# A venv keeps rotator and its dependencies apart from the base image's own Python packages.
# pip compiles the .pyc files here, at build time, so that start-up (which matters for the
# CronJob mode) reads them and nothing is written at run time.
RUN python -m venv /opt/rotator \
 && /opt/rotator/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
        -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock

# Then the wheel from the first stage, --no-deps: its dependencies are the locked ones above, and
# `pip check` fails the build if the lock no longer satisfies what pyproject.toml asks for.
# COPY --from (rather than RUN --mount) works with every builder, BuildKit or not (kaniko, buildah).
COPY --from=build /wheels/ /tmp/wheels/
RUN /opt/rotator/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        /tmp/wheels/rotator-*.whl \
 && /opt/rotator/bin/pip check \
 && rm -rf /tmp/wheels

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time, so never try to write
# .pyc files (set after the install, which precompiled them). PYTHONUNBUFFERED: log lines reach
# `docker logs` / `kubectl logs` as they are written. ROTATOR_CONFIG: where the configuration is
# mounted (a ConfigMap in Kubernetes); `--config` overrides it.
#
# TMPDIR=/tmp, the default, stated: with a read-only root filesystem /tmp must be mounted
# writable — `docker run --tmpfs /tmp`, or an emptyDir at /tmp in Kubernetes. SQLite may spill
# temporary files there and `rotator demo` writes its scratch config there. It is not pointed at
# the state volume so that scratch files never mix with, or outlive a restart next to, the journal.
ENV PATH="/opt/rotator/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    ROTATOR_CONFIG=/etc/rotator/rotator.yaml

# The journal (state.url: sqlite:////var/lib/rotator/...) lives on this volume: it must survive
# restarts, since it is what lets a crashed rotation resume instead of locking a project out.
# The working directory is the state folder too, so nothing is ever written under / by accident.
WORKDIR /var/lib/rotator
VOLUME ["/var/lib/rotator"]

# For the OCI labels only; they come after every install so that a new version does not
# invalidate the install layers' cache. VERSION is the package's version, required: the build
# stops unless `rotator --version` says the same, so the label never disagrees with the program.
# CI may add the commit (REVISION) and the repository's address (SOURCE_URL):
#   --build-arg REVISION="$CI_COMMIT_SHA" --build-arg SOURCE_URL="$CI_PROJECT_URL"
ARG VERSION
ARG REVISION=""
ARG SOURCE_URL=""
RUN test "rotator ${VERSION}" = "$(rotator --version)" \
 || { echo "VERSION=${VERSION} is not the package's version ($(rotator --version)): pass" \
           "--build-arg VERSION=<pyproject.toml's project.version>" >&2; exit 1; }

LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Keeps GitLab access tokens (project, group, service account) fresh inside Infisical, safely." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# `rotator daemon` serves /healthz /readyz /metrics and the trigger API on daemon.listen,
# 0.0.0.0:8080 by default.
EXPOSE 8080

# For `docker run` and Compose only (Kubernetes ignores it and uses its own probes).
# `rotator healthcheck` GETs /healthz on the config's daemon.listen (so a moved port is followed;
# no curl in a slim image, and none needed), exiting 0 or 1. For one-shot commands (run-once,
# check) the container exits long before the start period ends.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["rotator", "healthcheck"]

# Exec form: rotator is PID 1 and receives SIGTERM itself; both the daemon and run-once drain
# on it (rotations in flight finish, the journal records the rest). `CMD` is the default
# command; `docker run rotator run-once` (a CronJob) or `... check` replaces it.
ENTRYPOINT ["rotator"]
CMD ["daemon"]
