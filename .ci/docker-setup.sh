#!/usr/bin/env bash
# Prepares a Docker engine for lem's docker-runtime tests on a CI box (Debian/Ubuntu, root).
#
# Idempotent: every step is skipped when already done. Steps:
#   1. install docker.io + mmdebstrap (apt) when dockerd is missing
#   2. start dockerd in the background unless an engine already answers; wait for its socket
#   3. make the offline base image lem-base:bookworm from Debian packages (no registry needed); the
#      image carries its package list as a label and is remade when that list changes
#   4. build lem-cpu from images/cpu/Dockerfile on that base (layer cache makes a re-run ~1 s)
# Prints how long each step took. Honours DOCKER_HOST (then it does not start a local dockerd).
#
# Environment knobs:
#   LEM_BASE_IMAGE     base image tag to create/use            (default lem-base:bookworm)
#   LEM_BASE_PACKAGES  extra Debian packages in the base image (default python3-numpy; python3,
#                      procps and python3-jsonschema (the worker's contract check) are always in)
#   LEM_SUITE          Debian suite for mmdebstrap            (default bookworm)
#   LEM_SKIP_BUILD=1   stop after the base image
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE_IMAGE=${LEM_BASE_IMAGE:-lem-base:bookworm}
SUITE=${LEM_SUITE:-bookworm}
EXTRA_PACKAGES=${LEM_BASE_PACKAGES-python3-numpy}
DOCKER=${DOCKER:-docker}
T0=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { STEP_T=$(date +%s.%N); echo "docker-setup: $*"; }
done_step() { echo "docker-setup:   ... $* ($(elapsed "$STEP_T") s)"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. packages
step "checking for dockerd and mmdebstrap"
missing=()
if [ -z "${DOCKER_HOST:-}" ] && ! command -v dockerd >/dev/null 2>&1; then missing+=(docker.io); fi
if ! command -v "$DOCKER" >/dev/null 2>&1; then missing+=(docker.io); fi
if ! command -v mmdebstrap >/dev/null 2>&1; then missing+=(mmdebstrap); fi
if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  pkgs=($(printf '%s\n' "${missing[@]}" | sort -u))
  echo "docker-setup:   installing ${pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  done_step "installed ${pkgs[*]}"
else
  done_step "already installed"
fi

# 2. engine
step "checking the Docker engine"
if "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  done_step "engine already running ($("$DOCKER" version --format '{{.Server.Version}}'))"
else
  if [ -n "${DOCKER_HOST:-}" ]; then
    echo "docker-setup: DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local dockerd" >&2
    exit 1
  fi
  echo "docker-setup:   starting dockerd (log: /var/log/dockerd.log)"
  # setsid + nohup: the daemon outlives this script and the CI step that ran it.
  as_root sh -c 'setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &'
  for _ in $(seq 1 120); do
    if "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  if ! "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "docker-setup: dockerd did not answer within 60 s; last lines of /var/log/dockerd.log:" >&2
    tail -n 30 /var/log/dockerd.log >&2 || true
    exit 1
  fi
  done_step "engine up ($("$DOCKER" version --format '{{.Server.Version}}'))"
fi

# 3. base image (no registry: Debian packages via mmdebstrap, imported as an image). The include
# list is the cache key: it is stored as a label, and an image made from another list is remade.
include="python3,procps,python3-jsonschema${EXTRA_PACKAGES:+,${EXTRA_PACKAGES// /,}}"
step "checking base image $BASE_IMAGE (packages: $include)"
have=$("$DOCKER" image inspect -f '{{ index .Config.Labels "lem.base-include" }}' "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have" = "$include" ]; then
  done_step "already present"
else
  [ -n "$have" ] || ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
    || echo "docker-setup:   $BASE_IMAGE was made with another package list (${have:-unlabelled}); remaking it"
  echo "docker-setup:   mmdebstrap --variant=apt --include=$include $SUITE | docker import"
  as_root mmdebstrap --quiet --variant=apt --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" - | "$DOCKER" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "LABEL lem.base-include=$include" \
      --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  done_step "imported $BASE_IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
fi

if [ "${LEM_SKIP_BUILD:-}" = "1" ]; then
  echo "docker-setup: done in $(elapsed "$T0") s (image build skipped)"
  exit 0
fi

# 4. lem-cpu. The context is a tar of only what the Dockerfile copies, so node_modules, .git and
# run state never travel to the engine. Always run: the layer cache makes an unchanged rebuild
# near-instant, and a changed worker gets rebuilt.
step "building lem-cpu on $BASE_IMAGE"
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.pyc' --exclude='images/worker/tests' \
  -cf - images/cpu/Dockerfile images/worker \
  | DOCKER_BUILDKIT=0 "$DOCKER" build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      -f images/cpu/Dockerfile -t lem-cpu - 2>&1 >/dev/null \
  | { grep -v -e 'legacy builder is deprecated' -e 'BuildKit is currently disabled' \
      -e 'environment-variable\.' -e '^[[:space:]]*$' >&2 || true; }
"$DOCKER" run --rm lem-cpu python3 -m lem_worker health >/dev/null
# Superseded lem-cpu builds (dangling, unused) would pile up on a long-lived CI box.
"$DOCKER" image prune -f --filter label=lem.service=cpu >/dev/null
done_step "lem-cpu built and its worker answers health"

echo "docker-setup: done in $(elapsed "$T0") s"
