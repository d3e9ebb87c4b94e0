# rotator's container image: `docker build -t rotator:0.1.0.dev0 --build-arg VERSION=0.1.0.dev0 .` (the package version)
#
# Two stages on one pinned base image. The first builds rotator's wheel from the source tree; the
# second installs that wheel, and the dependencies pip resolves for it, into a virtual environment
# at /opt/rotator. Only the wheel crosses from the first stage, never the source tree, and the final
# image is what `.ci/install-check` reproduces without Docker (same wheel, same install).
#
# Run it with a read-only root filesystem, as the non-root user it declares (one command, shown
# on several lines):
#   docker run --read-only --tmpfs /tmp -v rotator-state:/var/lib/rotator -p 8080:8080
#     -v "$PWD/rotator.yaml:/etc/rotator/rotator.yaml:ro"
#     -e ROTATOR_GITLAB_TOKEN -e ROTATOR_INFISICAL_CLIENT_ID -e ROTATOR_INFISICAL_CLIENT_SECRET
#     rotator
# The configuration must put the journal on the state volume, by an absolute path:
#   state: {url: "sqlite:////var/lib/rotator/state.db"}
# (a relative sqlite path is resolved against the config file's folder, which is read-only here).
# Secrets come from the environment at run time (or *_FILE variables); none is in any layer.

# The base image is pinned by tag (one tag, used by both stages, so the venv built for one
# interpreter runs on the same interpreter). Pin by digest as well where builds must be
# bit-for-bit reproducible: python:3.11.11-slim-bookworm@sha256:...
FROM python:3.11.11-slim-bookworm AS build

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
# --no-deps: this stage builds rotator's own wheel only; the final stage resolves the dependencies.
RUN python -m pip wheel --no-deps --wheel-dir /wheels .


FROM python:3.11.11-slim-bookworm

# A fixed, numeric, non-root user and group. Fixed ids let a Kubernetes securityContext
# (runAsUser/fsGroup 10001) and a volume's ownership agree with the image; no home, no shell.
RUN groupadd --system --gid 10001 rotator \
 && useradd --system --uid 10001 --gid rotator --no-create-home \
            --home-dir /var/lib/rotator --shell /usr/sbin/nologin rotator \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/rotator

# The wheel from the first stage. COPY --from (rather than RUN --mount) works with every builder,
# BuildKit or not (kaniko, buildah). The wheel stays in this layer: about 150 kB.
COPY --from=build /wheels/ /tmp/wheels/
# A venv keeps rotator and its dependencies apart from the base image's own Python packages.
# pip compiles the .pyc files here, at build time, so that start-up (which matters for the
# CronJob mode) reads them and nothing is written at run time.
RUN python -m venv /opt/rotator \
 && /opt/rotator/bin/pip install --no-cache-dir --disable-pip-version-check /tmp/wheels/rotator-*.whl \
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

# For the OCI labels only; they change nothing at run time, and come after every RUN so that a
# new version does not invalidate the install layer's cache. CI passes the release (VERSION, e.g.
# the git tag), the commit (REVISION) and the repository's address (SOURCE_URL), e.g.
#   --build-arg VERSION="$CI_COMMIT_TAG" --build-arg REVISION="$CI_COMMIT_SHA"
#   --build-arg SOURCE_URL="$CI_PROJECT_URL"
ARG VERSION=0.1.0.dev0
ARG REVISION=""
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Keeps GitLab project access tokens fresh inside Infisical, safely." \
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
