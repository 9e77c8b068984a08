#!/usr/bin/env bash
# Sets up a container engine the docker deployer tests (and users without Docker) can use: Debian's podman
# answering the Docker API (`podman system service`, started by the tests or `make podman-start`), and an
# offline base image with Python 3.11 made by debootstrap from Debian's mirror (no registry needed).
# Everything it writes lives in $RCATUNE_PODMAN_CACHE (default ~/.cache/rcatune/podman): containers.conf
# and the base image's root filesystem as a tar. Needs root for apt-get; a second run returns at once.
set -euo pipefail
cache="${RCATUNE_PODMAN_CACHE:-$HOME/.cache/rcatune/podman}"
mkdir -p "$cache"
if ! command -v podman > /dev/null || ! command -v runc > /dev/null || ! command -v debootstrap > /dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "podman: installing needs root for apt-get (podman runc debootstrap); skipped" >&2; exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap > /dev/null
fi
# crun (podman's default) refuses hybrid cgroups; runc and cgroupfs work without systemd.
cat > "$cache/containers.conf" <<'CONF'
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
if [ ! -s "$cache/base-python3.11-bookworm.tar" ]; then
  echo "podman: making the base image's root filesystem with debootstrap (about 1.5 minutes)"
  rm -rf "$cache/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$cache/rootfs" http://deb.debian.org/debian \
    > "$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$cache/rootfs/var/cache/apt/archives/"*.deb "$cache/rootfs/var/lib/apt/lists/"*
  tar -C "$cache/rootfs" -cf "$cache/base-python3.11-bookworm.tar.tmp" .
  mv "$cache/base-python3.11-bookworm.tar.tmp" "$cache/base-python3.11-bookworm.tar"
  rm -rf "$cache/rootfs"
fi
echo "podman: ready ($cache)"
