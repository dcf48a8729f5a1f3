#!/usr/bin/env bash
# End-to-end SLURM test: install and start the single-node cluster of
# scripts/slurm/local_cluster.sh, run the toy workflow of this directory through
# profiles/slurm-local-test, check the outputs are byte-identical to a local
# (--cores 2) run, and stop the cluster again (EXIT trap: also on failure).
#
#   tests/slurm_toy/run.sh            # as root, from anywhere; no stdin needed
#
# Environment (optional):
#   MLIPFT_SLURM_STATE_DIR    cluster state dir (default /tmp/mlipft-slurm)
#   MLIPFT_SLURM_TEST_KEEP=1  leave the cluster running and keep the tmp dir
#   MLIPFT_SLURM_TEST_TMP     parent of the tmp dir (default ${TMPDIR:-/tmp})
#   SNAKEMAKE                 snakemake executable (default: .venv/bin/snakemake
#                             of the repository, else the one on PATH)
# Every step runs under `timeout`; the whole test is bounded by the sum
# (about 25 min, in practice ~1.5 min when the packages are installed).
set -euo pipefail
exec </dev/null

T_START=$SECONDS
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
CLUSTER=scripts/slurm/local_cluster.sh
TOY=tests/slurm_toy
KEEP=${MLIPFT_SLURM_TEST_KEEP:-0}
export MLIPFT_SLURM_STATE_DIR=${MLIPFT_SLURM_STATE_DIR:-/tmp/mlipft-slurm}
STATE=$MLIPFT_SLURM_STATE_DIR

say() { printf '[slurm_toy %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (installs packages, starts daemons)"

# Snakemake must not run inside a SLURM allocation (the plugin then strips the
# SLURM environment and nests jobs); drop anything inherited from one
for v in $(compgen -e); do
    case $v in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$v" ;; esac
done
# a user/CI-wide default profile must not leak into either run
unset SNAKEMAKE_PROFILE

if [[ -n ${SNAKEMAKE:-} ]]; then
    :
elif [[ -x $REPO/.venv/bin/snakemake ]]; then
    SNAKEMAKE=$REPO/.venv/bin/snakemake
    export PATH=$REPO/.venv/bin:$PATH
else
    SNAKEMAKE=$(command -v snakemake) || fail "snakemake not found (no .venv/bin/snakemake, none on PATH)"
fi
"$SNAKEMAKE" --version >/dev/null || fail "$SNAKEMAKE does not run"

TMP=$(mktemp -d "${MLIPFT_SLURM_TEST_TMP:-${TMPDIR:-/tmp}}/slurm_toy.XXXXXX")
declare -A WALL=()
STARTED_PIDS=""
STEP_PID=""

cleanup() {
    local rc=$?
    trap - EXIT
    set +e
    if [[ -n $STEP_PID ]] && kill -0 "$STEP_PID" 2>/dev/null; then
        # interrupted during a step: end it (timeout passes TERM to its child)
        say "terminating the running step (pid $STEP_PID)"
        kill -TERM "$STEP_PID" 2>/dev/null
        local w=0
        while kill -0 "$STEP_PID" 2>/dev/null && ((w < 30)); do sleep 1; w=$((w + 1)); done
        kill -KILL "$STEP_PID" 2>/dev/null
    fi
    if [[ $KEEP == 1 ]]; then
        say "MLIPFT_SLURM_TEST_KEEP=1: cluster left running, outputs in $TMP"
    else
        local t=$SECONDS f
        for f in "$STATE"/pids/*.pid; do
            [[ -e $f ]] && STARTED_PIDS+=" $(cat "$f")"
        done
        STARTED_PIDS=$(tr ' ' '\n' <<<"$STARTED_PIDS" | sort -un | tr '\n' ' ')
        timeout 180 "$CLUSTER" stop
        WALL[stop]=$((SECONDS - t))
        # every daemon pid recorded at start must be gone (zombies awaiting
        # reaping by pid 1 count as gone)
        local pid left=""
        for pid in $STARTED_PIDS; do
            if [[ -r /proc/$pid/status ]] && [[ $(awk '/^State:/{print $2}' "/proc/$pid/status") != Z ]]; then
                left+=" $pid($(cat "/proc/$pid/comm"))"
            fi
        done
        if [[ -n $left ]]; then
            say "FAIL: daemons still alive after stop:$left"
            rc=1
        else
            say "no daemon left running (checked pids:${STARTED_PIDS:- none})"
        fi
        if ((rc == 0)); then rm -rf "$TMP"; else say "outputs kept in $TMP"; fi
    fi
    say "wall times [s]: install=${WALL[install]:--} start=${WALL[start]:--}" \
        "start-again=${WALL[start2]:--} toy-slurm=${WALL[slurm]:--}" \
        "toy-local=${WALL[local]:--} stop=${WALL[stop]:--}"
    say "total wall time: $((SECONDS - T_START)) s"
    if ((rc == 0)); then say "PASS"; else say "FAILED (rc=$rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { # name timeout cmd...
    local name=$1 limit=$2 t=$SECONDS rc=0
    shift 2
    say "== $name (limit ${limit}s): $*"
    # in the background + wait, so that INT/TERM reach the traps at once
    timeout --kill-after=10 "$limit" "$@" &
    STEP_PID=$!
    wait "$STEP_PID" || rc=$?
    STEP_PID=""
    WALL[$name]=$((SECONDS - t))
    ((rc == 0)) || fail "$name failed (rc=$rc; 124 means it timed out)"
}

step install 900 "$CLUSTER" install
step start 300 "$CLUSTER" start
# `start` is idempotent: a second call finds every daemon and changes nothing
step start2 120 "$CLUSTER" start
eval "$("$CLUSTER" env)"
sinfo -N -o '%N %P %t %c %m %G' >&2

SM_COMMON=(--snakefile "$TOY/Snakefile" --workflow-profile none --nocolor all)

# the toy workflow through SLURM (from the repository root, outputs in TMP)
step slurm 600 "$SNAKEMAKE" --profile profiles/slurm-local-test \
    --directory "$TMP/slurm" "${SM_COMMON[@]}"
# the same targets locally
step local 300 "$SNAKEMAKE" --profile none --cores 2 \
    --directory "$TMP/local" "${SM_COMMON[@]}"

say "== checks"
diff -r "$TMP/local/results" "$TMP/slurm/results" >&2 \
    || fail "SLURM and local outputs differ"
say "results identical: $(cd "$TMP/slurm" && find results -type f | sort | tr '\n' ' ')"
# every SLURM-run job must have run inside a SLURM job on partition local,
# without GPUs; every local job outside SLURM
n=0
for f in "$TMP"/slurm/logs/*.log; do
    grep -q 'slurm_job_id=[0-9]' "$f" || fail "$f: job did not run under SLURM: $(cat "$f")"
    n=$((n + 1))
done
((n == 7)) || fail "expected 7 job logs from the SLURM run, got $n"
for f in "$TMP"/slurm/logs/finetune_*.log; do
    grep -q 'gpus=none partition=local' "$f" || fail "$f: unexpected GPU/partition: $(cat "$f")"
done
if grep -l 'slurm_job_id=[0-9]' "$TMP"/local/logs/*.log >/dev/null 2>&1; then
    fail "the local run ran under SLURM"
fi
# accounting saw all 7 jobs of this run as COMPLETED (job name = SLURM run ID)
RUN_ID=$(grep -ho 'SLURM run ID: [0-9a-f-]*' "$TMP"/slurm/.snakemake/log/*.snakemake.log | head -n1 | awk '{print $4}')
[[ -n $RUN_ID ]] || fail "no SLURM run ID in the Snakemake log"
sacct -X -n -P -S now-1days --name="$RUN_ID" -o JobID,JobName,Partition,State,AllocTRES >"$TMP/sacct.txt"
cat "$TMP/sacct.txt" >&2
[[ $(grep -c '|COMPLETED|' "$TMP/sacct.txt" || true) -eq 7 ]] \
    || fail "sacct does not list 7 COMPLETED jobs for run $RUN_ID"
if grep -q 'gres/gpu' "$TMP/sacct.txt"; then fail "a job was allocated a GPU"; fi
say "7 jobs ran through SLURM (run $RUN_ID), all COMPLETED in accounting, no GPUs"
