#!/usr/bin/env bash
# The real workflow through a real SLURM: start the single-node cluster of
# scripts/slurm/local_cluster.sh, run the smoke-scale `fig06c` through
# profiles/slurm-local-test, run the same target locally, compare every table
# (numbers equal to 1e-6 relative) and check accounting saw every job COMPLETED;
# stop every daemon it started (EXIT trap, also on failure).
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
for d in slurm local; do mkdir -p "$TMP/$d" && ln -s "$REPO/config" "$TMP/$d/config"; done
COMMON=(--snakefile "$REPO/Snakefile" --workflow-profile none --nocolor fig06c --config scale=smoke)

t=$SECONDS
timeout 2400 "$SNAKEMAKE" --profile profiles/slurm-local-test --directory "$TMP/slurm" "${COMMON[@]}" \
    > "$TMP/slurm.log" 2>&1 || { tail -50 "$TMP/slurm.log" >&2; fail "SLURM run failed"; }
say "SLURM run: $((SECONDS - t)) s"
t=$SECONDS
timeout 1800 "$SNAKEMAKE" --cores 2 --directory "$TMP/local" "${COMMON[@]}" \
    > "$TMP/local.log" 2>&1 || { tail -50 "$TMP/local.log" >&2; fail "local run failed"; }
say "local run: $((SECONDS - t)) s"

"$PY" - "$TMP/local/results/smoke" "$TMP/slurm/results/smoke" <<'PYEOF' || fail "SLURM and local outputs differ"
import sys
from pathlib import Path
import pandas as pd
local, slurm = map(Path, sys.argv[1:])
tables = sorted(p.relative_to(local) for p in local.glob("tables/*.csv"))
assert tables, "no tables"
for rel in tables:
    pd.testing.assert_frame_equal(pd.read_csv(local / rel), pd.read_csv(slurm / rel), rtol=1e-6, check_exact=False)
for ext in ("png", "pdf"):
    assert (slurm / "figures" / f"fig06c.{ext}").stat().st_size > 0
print("identical tables:", ", ".join(map(str, tables)))
PYEOF

RUN_ID=$(grep -ho 'SLURM run ID: [0-9a-f-]*' "$TMP"/slurm/.snakemake/log/*.snakemake.log | head -n1 | awk '{print $4}')
[[ -n $RUN_ID ]] || fail "no SLURM run ID in the Snakemake log"
sacct -X -n -P -S now-1days --name="$RUN_ID" -o JobID,JobName,Partition,State > "$TMP/sacct.txt"
n_done=$(grep -c '|COMPLETED$' "$TMP/sacct.txt" || true)
n_all=$(wc -l < "$TMP/sacct.txt")
say "accounting: $n_done of $n_all SLURM jobs COMPLETED (run $RUN_ID)"
((n_all > 10 && n_done == n_all)) || { cat "$TMP/sacct.txt" >&2; fail "not every SLURM job completed"; }
