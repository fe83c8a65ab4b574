#!/usr/bin/env bash
# Installs what the `mpi` feature of mc-cluster needs on Debian: Open MPI
# (`mpirun` and its headers) and libclang (the `mpi` crate generates its
# bindings with bindgen). Does nothing when they are there already.
set -euo pipefail

have() {
    command -v mpirun >/dev/null 2>&1 &&
        command -v mpicc >/dev/null 2>&1 &&
        ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1
}

if have; then
    echo "install-mpi: Open MPI and libclang are installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if $sudo apt-get update -q &&
        $sudo apt-get install -y -q \
            openmpi-bin libopenmpi-dev libclang-dev; then
        break
    fi
    echo "install-mpi: attempt $attempt failed; trying again" >&2
    sleep 5
done
have || { echo "install-mpi: Open MPI or libclang is missing after the install" >&2; exit 1; }
mpirun --version | head -n 1
