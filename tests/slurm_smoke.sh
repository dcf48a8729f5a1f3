#!/usr/bin/env bash
# The real workflow through a real SLURM: start the single-node cluster of
# scripts/slurm/local_cluster.sh, run the smoke-scale `fig06c` through
# profiles/slurm-local-test, compare its tables with the smoke reference tables
# (tests/data/reference_tables/smoke, which the local smoke run of
# tests/test_workflow.py must equal too; 1e-3 relative, as there across CPUs:
# no second, local run of the target) and check accounting saw every job
# COMPLETED; stop every daemon it started (EXIT trap, also on failure).
#
#   bash tests/slurm_smoke.sh        # as root; `make slurm-test`; run by .ci/run
set -euo pipefail
exec </dev/null
T0=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
CLUSTER=scripts/slurm/local_cluster.sh
export MLIPFT_SLURM_STATE_DIR=${MLIPFT_SLURM_STATE_DIR:-/tmp/mlipft-slurm}
SNAKEMAKE=$REPO/.venv/bin/snakemake
PY=$REPO/.venv/bin/python
export PATH=$REPO/.venv/bin:$PATH
say() { printf '[slurm_smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || fail "must run as root (installs packages, starts daemons)"
for v in $(compgen -e); do case $v in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$v" ;; esac; done
unset SNAKEMAKE_PROFILE

TMP=$(mktemp -d "${TMPDIR:-/tmp}/slurm_smoke.XXXXXX")
cleanup() {
    local rc=$?
    trap - EXIT
    set +e
    timeout 180 "$CLUSTER" stop
    if ((rc == 0)); then rm -rf "$TMP"; else say "outputs kept in $TMP"; fi
    say "total wall time: $((SECONDS - T0)) s"
    ((rc == 0)) && say PASS || say "FAILED (rc=$rc)"
    exit "$rc"
}
trap cleanup EXIT

timeout 900 "$CLUSTER" install
timeout 300 "$CLUSTER" start
eval "$("$CLUSTER" env)"
mkdir -p "$TMP/slurm" && ln -s "$REPO/config" "$TMP/slurm/config"
COMMON=(--snakefile "$REPO/Snakefile" --workflow-profile none --nocolor fig06c --config scale=smoke)

t=$SECONDS
timeout 2400 "$SNAKEMAKE" --profile profiles/slurm-local-test --directory "$TMP/slurm" "${COMMON[@]}" \
    > "$TMP/slurm.log" 2>&1 || { tail -50 "$TMP/slurm.log" >&2; fail "SLURM run failed"; }
say "SLURM run: $((SECONDS - t)) s"
"$PY" benchmarks/compare_tables.py tests/data/reference_tables/smoke "$TMP/slurm/results/smoke/tables" \
    --pattern 'fig06c_*.csv' --rtol 1e-3 || fail "the SLURM run's tables differ from the smoke references"
for ext in png pdf; do
    [[ -s $TMP/slurm/results/smoke/figures/fig06c.$ext ]] || fail "no figure fig06c.$ext"
done

RUN_ID=$(grep -ho 'SLURM run ID: [0-9a-f-]*' "$TMP"/slurm/.snakemake/log/*.snakemake.log | head -n1 | awk '{print $4}')
[[ -n $RUN_ID ]] || fail "no SLURM run ID in the Snakemake log"
sacct -X -n -P -S now-1days --name="$RUN_ID" -o JobID,JobName,Partition,State > "$TMP/sacct.txt"
n_done=$(grep -c '|COMPLETED$' "$TMP/sacct.txt" || true)
n_all=$(wc -l < "$TMP/sacct.txt")
say "accounting: $n_done of $n_all SLURM jobs COMPLETED (run $RUN_ID)"
((n_all > 10 && n_done == n_all)) || { cat "$TMP/sacct.txt" >&2; fail "not every SLURM job completed"; }
