#!/usr/bin/env bash
# Installs the Debian 12 packages pcs-mpi builds and tests against (as root, or with sudo). Idempotent.
set -euo pipefail
packages=(
  libopenmpi-dev openmpi-bin          # MPI
  libdnnl-dev libopenblas-dev         # oneDNN (network layers) and OpenBLAS
  libhdf5-dev                         # shards and checkpoints
  libpng-dev libjpeg62-turbo-dev libturbojpeg0-dev
  pkg-config
  python3 python3-h5py python3-numpy python3-pil   # the tests read our outputs with h5py and Pillow
  iproute2 bsdutils time              # the multi-host test bed (ip netns, tc), a terminal (script) and /usr/bin/time
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup-debian.sh: swift is not on PATH; install Swift 6.x (swift.org) first" >&2; exit 1; }
