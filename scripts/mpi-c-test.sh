#!/usr/bin/env bash
# hatebm_session_new_mpi from a C harness that runs MPI itself: builds
# libhatebm with the `mpi` feature, copies it aside (target/c-tests/mpi/lib:
# scripts/c-tests.sh later rebuilds target/debug/libhatebm.so without MPI),
# compiles examples_c/mpi_session.c with mpicc, and runs it under `mpirun -np 2`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/ensure-tools.sh mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo build -q -p hatebm-ffi --features mpi
lib="$root/target/c-tests/mpi/lib"
mkdir -p "$lib"
cp target/debug/libhatebm.so "$lib/"
mpicc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude examples_c/mpi_session.c \
    -L"$lib" -Wl,-rpath,"$lib" -lhatebm -o target/c-tests/mpi/mpi_session
mpirun --oversubscribe --bind-to none -np 2 target/c-tests/mpi/mpi_session
