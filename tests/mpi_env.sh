# tests/mpi_env.sh — sourced by the MPI tests (test_mpi.sh, long_mpi_equivalence.sh)
# with the build directory as $1: sets qinx, qmpi, data (the shared datasets) and
# tmp (removed on exit), fail(), and the Open MPI environment CI needs (it runs
# as root); exits 77 (skip, with the reason) without qinx-mpi, mpirun or
# SIFT10K.
qinx="$1/qinx"
qmpi="$1/qinx-mpi"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${QX_DATA_DIR:-$root/../shared/data}"
[ -x "$qmpi" ] || { echo "SKIP: qinx-mpi was not built (Open MPI not found: apt-get install libopenmpi-dev openmpi-bin)"; exit 77; }
command -v mpirun >/dev/null || { echo "SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; }
[ -f "$data/siftsmall/siftsmall_base.fvecs" ] || { echo "SKIP: $data/siftsmall/siftsmall_base.fvecs is absent"; exit 77; }
tmp=$(mktemp -d /tmp/qinx-mpi-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# the figure KEY of a `qinx search --json` output file
val() { sed -E "s/.*\"$2\":([0-9.]*).*/\1/" "$1"; }
