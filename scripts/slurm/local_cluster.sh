#!/usr/bin/env bash
# A real single-node SLURM cluster (slurmctld + slurmd + slurmdbd/MariaDB +
# munge) on this machine, for testing the workflow's SLURM profile.
#
# Usage: scripts/slurm/local_cluster.sh {install|start|stop|status|env|restart}
#
#   install  apt-get the Debian 12 packages (munge, slurmctld, slurmd,
#            slurm-client, slurmdbd, mariadb-server) non-interactively; does
#            nothing when they are all present. Needs root. Package scripts are
#            kept from starting any daemon (policy-rc.d), so nothing runs after.
#   start    render the configs into the state dir, start munged, mariadbd,
#            slurmdbd, slurmctld and slurmd by hand (foreground mode, put in
#            the background), record each pid in $STATE/pids/<name>.pid, wait
#            until sacctmgr answers and the node is idle, register cluster,
#            account and user in accounting. Safe to call again: daemons whose
#            recorded pid is alive are left alone.
#   stop     TERM exactly the recorded pids (reverse start order), KILL those
#            still alive after a bounded wait. Touches no other process.
#   status   daemons, pids, sinfo, accounting.
#   env      print `export SLURM_CONF=...` for eval "$(... env)".
#
# Outside the state dir, `start` only creates the symlink
# /etc/slurm/slurm.conf -> $STATE/etc/slurm.conf when no slurm.conf is there
# (srun inside jobs needs it, see link_default_conf); `stop` removes it.
#
# Every file (configs, munge key and socket, MariaDB datadir, spool, logs, pid
# files) lives in the state dir; nothing is written to /run.
#
# Environment (all optional):
#   MLIPFT_SLURM_STATE_DIR   state dir            (default /tmp/mlipft-slurm)
#   MLIPFT_SLURM_CLUSTER     ClusterName          (default mlipft)
#   MLIPFT_SLURM_ACCOUNT     accounting account   (default mlipft)
#   MLIPFT_SLURM_CTLD_PORT / _SLURMD_PORT / _DBD_PORT / _DB_PORT
#                            ports (default 6817 / 6818 / 6819 / 3307)
#   MLIPFT_SLURM_WAIT        seconds per readiness wait (default 90)
#   MLIPFT_SLURM_STOP_WAIT   seconds between TERM and KILL (default 20)
#   MLIPFT_SLURM_MEM_FRACTION  percent of total memory given to the node (90)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${MLIPFT_SLURM_STATE_DIR:-/tmp/mlipft-slurm}
CLUSTER=${MLIPFT_SLURM_CLUSTER:-mlipft}
ACCOUNT=${MLIPFT_SLURM_ACCOUNT:-mlipft}
CTLD_PORT=${MLIPFT_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${MLIPFT_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${MLIPFT_SLURM_DBD_PORT:-6819}
DB_PORT=${MLIPFT_SLURM_DB_PORT:-3307}
WAIT=${MLIPFT_SLURM_WAIT:-90}
STOP_WAIT=${MLIPFT_SLURM_STOP_WAIT:-20}
MEM_FRACTION=${MLIPFT_SLURM_MEM_FRACTION:-90}

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server mariadb-client)
# start order; stop goes in reverse
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

ETC=$STATE/etc
LOG=$STATE/log
PIDS=$STATE/pids
export SLURM_CONF=$ETC/slurm.conf

log() { printf '[local_cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (got uid $(id -u))"; }

# ---------------------------------------------------------------- install ---
missing_packages() {
    local p st
    for p in "${PACKAGES[@]}"; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ $st == installed ]] || printf '%s\n' "$p"
    done
}

cmd_install() {
    need_root
    local missing
    missing=$(missing_packages)
    if [[ -z $missing ]]; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    # shellcheck disable=SC2086
    log "installing:" $missing
    # keep package maintainer scripts from starting daemons (no systemd here;
    # a daemon started by invoke-rc.d would not be ours to stop)
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        # removed again whatever happens (install is this process' only job)
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    "${apt[@]}" update >"${TMPDIR:-/tmp}/mlipft-slurm-apt.log" 2>&1 \
        || { tail -n 30 "${TMPDIR:-/tmp}/mlipft-slurm-apt.log" >&2; die "apt-get update failed"; }
    # shellcheck disable=SC2086
    "${apt[@]}" install --no-install-recommends $missing \
        >>"${TMPDIR:-/tmp}/mlipft-slurm-apt.log" 2>&1 \
        || { tail -n 30 "${TMPDIR:-/tmp}/mlipft-slurm-apt.log" >&2; die "apt-get install failed"; }
    missing=$(missing_packages)
    [[ -z $missing ]] || die "still missing after install: $missing"
    log "installed: ${PACKAGES[*]}"
}

# ------------------------------------------------------------ pid helpers ---
# name of the executable a daemon runs as (checked against /proc/PID/comm so a
# recycled pid is never mistaken for ours)
daemon_comm() {
    case $1 in
        munged) echo munged ;;
        mariadbd) echo mariadbd ;;
        slurmdbd) echo slurmdbd ;;
        slurmctld) echo slurmctld ;;
        slurmd) echo slurmd ;;
    esac
}

recorded_pid() { if [[ -s $PIDS/$1.pid ]]; then tr -dc 0-9 <"$PIDS/$1.pid"; fi; }

# pid is alive and is the expected executable
pid_is() {
    local pid=$1 comm=$2
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    # zombies are not alive
    [[ $(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]]
}

daemon_alive() { pid_is "$(recorded_pid "$1")" "$(daemon_comm "$1")"; }

# remove pid files (ours and the daemons' own) whose process is gone
clean_stale_pidfiles() {
    local f pid name
    for name in "${DAEMONS[@]}"; do
        f=$PIDS/$name.pid
        if [[ -e $f ]] && ! daemon_alive "$name"; then
            log "removing stale pid file $f"
            rm -f "$f"
        fi
    done
    for f in "$STATE"/run/*.pid; do
        [[ -e $f ]] || continue
        name=$(basename "$f" .pid)
        pid=$(tr -dc 0-9 <"$f" || true)
        if ! pid_is "$pid" "$name"; then
            log "removing stale pid file $f"
            rm -f "$f"
        fi
    done
}

log_tail() {
    local f
    for f in "$@"; do
        [[ -e $f ]] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 25 "$f" >&2 || true
    done
}

# launch "$@" as daemon NAME in its own session, stdout/stderr to log, record pid
launch() {
    local name=$1
    shift
    if daemon_alive "$name"; then
        log "$name already running (pid $(recorded_pid "$name"))"
        return 0
    fi
    log "starting $name"
    # no job control in this script, so the child is not a process-group
    # leader and setsid execs in place: $! is the daemon's own pid
    # (fd 9, the start/stop lock, must not be inherited by the daemon)
    setsid "$@" </dev/null >>"$LOG/$name.stdout" 2>&1 9>&- &
    local pid=$!
    echo "$pid" >"$PIDS/$name.pid"
    local t=0
    while ((t < 20)); do
        # exec chain nohup/setsid -> daemon: wait until comm is the daemon
        if pid_is "$pid" "$(daemon_comm "$name")"; then
            return 0
        fi
        if [[ ! -d /proc/$pid ]]; then
            log_tail "$LOG/$name.stdout" "$LOG/$name.log"
            die "$name exited right after start"
        fi
        sleep 0.25
        t=$((t + 1))
    done
    log_tail "$LOG/$name.stdout"
    die "pid $pid did not become $name"
}

# wait_for DESC LOGS... -- CMD...: run CMD until it succeeds, at most $WAIT s
wait_for() {
    local desc=$1
    shift
    local logs=()
    while [[ $1 != -- ]]; do logs+=("$1"); shift; done
    shift
    local start=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= WAIT)); then
            log "timed out after ${WAIT}s waiting for: $desc"
            log "last attempt: $*"
            "$@" 2>&1 | tail -n 5 >&2 || true
            log_tail "${logs[@]}"
            die "$desc not ready"
        fi
        sleep 1
    done
    log "$desc ready after $((SECONDS - start))s"
}

# ----------------------------------------------------------------- config ---
render() { # template output
    sed -e "s|@STATE@|$STATE|g" -e "s|@CLUSTER@|$CLUSTER|g" \
        -e "s|@CTLD_HOST@|$CTLD_HOST|g" -e "s|@CTLD_PORT@|$CTLD_PORT|g" \
        -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" \
        -e "s|@DB_PORT@|$DB_PORT|g" -e "s|@DB_PASS@|$DB_PASS|g" \
        -e "s|@SLURM_USER@|$SLURM_USER|g" -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
        -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" "$1" >"$2.new"
    if grep -q '@[A-Z_][A-Z_]*@' "$2.new"; then
        die "unfilled placeholder in $2.new: $(grep -o '@[A-Z_][A-Z_]*@' "$2.new" | sort -u | tr '\n' ' ')"
    fi
    if [[ -e $2 ]] && cmp -s "$2" "$2.new"; then
        rm -f "$2.new"
        return 0
    fi
    if [[ -e $2 ]] && any_alive; then
        rm -f "$2.new"
        die "$2 would change while daemons run; run '$0 stop' first"
    fi
    mv "$2.new" "$2"
}

any_alive() {
    local n
    for n in "${DAEMONS[@]}"; do daemon_alive "$n" && return 0; done
    return 1
}

detect_node() {
    CPUS=$(nproc)
    local total
    total=$(free -m | awk '/^Mem:/{print $2}')
    [[ $CPUS =~ ^[0-9]+$ && $total =~ ^[0-9]+$ ]] || die "cannot detect CPUs/memory (nproc=$CPUS free=$total)"
    # in a container, a cgroup (v2) memory limit below the host's RAM wins
    local limit
    limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || true)
    if [[ $limit =~ ^[0-9]+$ ]] && ((limit / 1048576 < total)); then
        total=$((limit / 1048576))
    fi
    # leave room for the OS and the daemons, or slurmd reports less memory
    # than configured and the node is drained
    MEM_MB=$((total * MEM_FRACTION / 100))
}

write_configs() {
    mkdir -p "$ETC" "$LOG" "$PIDS" "$STATE/run" "$STATE/spool/ctld" \
        "$STATE/spool/d" "$STATE/munge" "$STATE/mysql"
    chmod 755 "$STATE"
    CTLD_HOST=$(hostname -s 2>/dev/null || hostname)
    SLURM_USER=$(id -un)
    MUNGE_SOCKET=$STATE/munge/munge.socket
    detect_node
    # MariaDB password of the slurm DB user: made once, kept in the state dir
    if [[ ! -s $STATE/mysql/slurm.pass ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$STATE/mysql/slurm.pass")
    fi
    DB_PASS=$(cat "$STATE/mysql/slurm.pass")
    render "$HERE/slurm.conf.in" "$ETC/slurm.conf"
    (umask 077 && render "$HERE/slurmdbd.conf.in" "$ETC/slurmdbd.conf")
    chmod 600 "$ETC/slurmdbd.conf"
    chmod 644 "$ETC/slurm.conf"
    # cgroup.conf is read only by cgroup plugins, which this cluster does not use
    log "node localhost: CPUs=$CPUS RealMemory=${MEM_MB}MB (no GPUs); configs in $ETC"
}

# ---------------------------------------------------------------- daemons ---
start_munge() {
    local key=$STATE/munge/munge.key
    if [[ ! -s $key ]]; then
        (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
    fi
    # socket dir must be searchable by everybody (munged warns otherwise);
    # the key itself is root-only
    chmod 755 "$STATE/munge"
    chmod 400 "$key"
    # a socket left by a dead munged would make the new one refuse to start;
    # never remove the socket of a live one
    daemon_alive munged || rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged munged --foreground --force --key-file="$key" \
        --socket="$MUNGE_SOCKET" --pid-file="$STATE/run/munged.pid" \
        --log-file="$LOG/munged.log" --seed-file="$STATE/munge/munged.seed"
    wait_for "munge" "$LOG/munged.log" "$LOG/munged.stdout" -- \
        bash -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"
}

# shellcheck disable=SC2120 # called with arguments through wait_for
mysql_client() { mariadb --no-defaults -S "$STATE/mysql/mysqld.sock" -u root "$@"; }

start_mariadb() {
    local data=$STATE/mysql/data
    if [[ ! -d $data/mysql ]]; then
        log "initialising MariaDB datadir $data"
        mkdir -p "$data"
        mariadb-install-db --no-defaults --datadir="$data" --user=root \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG/mariadb-install-db.log" 2>&1 \
            || { log_tail "$LOG/mariadb-install-db.log"; die "mariadb-install-db failed"; }
    fi
    launch mariadbd mariadbd --no-defaults --datadir="$data" --user=root \
        --socket="$STATE/mysql/mysqld.sock" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --pid-file="$STATE/run/mariadbd.pid" \
        --log-error="$LOG/mariadbd.log" --skip-name-resolve \
        --innodb-buffer-pool-size=256M --innodb-log-file-size=64M \
        --innodb-lock-wait-timeout=900 --max-connections=100
    wait_for "mariadb" "$LOG/mariadbd.log" "$LOG/mariadbd.stdout" -- \
        mysql_client -e 'SELECT 1'
    mysql_client <<SQL || die "creating the slurm database user failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

start_slurmdbd() {
    launch slurmdbd slurmdbd -D
    wait_for "slurmdbd (sacctmgr)" "$LOG/slurmdbd.log" "$LOG/slurmdbd.stdout" -- \
        sacctmgr -n list cluster
}

register_accounting() {
    # the cluster must be known to slurmdbd before slurmctld registers,
    # or job records are refused and sacct stays empty
    local user
    user=$(id -un)
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
        log "registered cluster $CLUSTER"
    fi
    if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
            description="mlipft test account" organization=mlipft >/dev/null \
            || die "sacctmgr add account $ACCOUNT failed"
        log "registered account $ACCOUNT"
    fi
    if [[ -z $(sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user="$user" format=user) ]]; then
        sacctmgr -i add user "$user" account="$ACCOUNT" defaultaccount="$ACCOUNT" \
            cluster="$CLUSTER" >/dev/null || die "sacctmgr add user $user failed"
        log "registered user $user in account $ACCOUNT"
    fi
}

# snakemake-executor-plugin-slurm-jobstep (0.6.1) drops every SLURM_* variable
# but a few job ids from the environment of its nested `srun`, SLURM_CONF
# included; srun inside a job then finds no config ("DNS SRV lookup failed").
# So the config must also be where the Debian build looks by default:
# /etc/slurm/slurm.conf becomes a symlink to ours (removed again by `stop`).
# If a foreign slurm.conf is there, an srun wrapper that sets SLURM_CONF goes
# to $STATE/bin instead, which must then be first on PATH (see `env`).
DEFAULT_CONF=/etc/slurm/slurm.conf
link_default_conf() {
    rm -f "$STATE/bin/srun"
    if [[ -L $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == "$SLURM_CONF" ]]; then
        return 0
    fi
    if [[ -L $DEFAULT_CONF && ! -e $DEFAULT_CONF ]]; then
        log "replacing dangling symlink $DEFAULT_CONF -> $(readlink "$DEFAULT_CONF")"
        rm -f "$DEFAULT_CONF"
    fi
    if [[ ! -e $DEFAULT_CONF ]]; then
        mkdir -p "$(dirname "$DEFAULT_CONF")"
        ln -s "$SLURM_CONF" "$DEFAULT_CONF"
        log "linked $DEFAULT_CONF -> $SLURM_CONF"
        return 0
    fi
    log "WARNING: $DEFAULT_CONF belongs to another cluster; srun inside jobs" \
        "needs $STATE/bin first on PATH (eval \"\$($0 env)\")"
    mkdir -p "$STATE/bin"
    printf '#!/bin/sh\nSLURM_CONF=%s exec /usr/bin/srun "$@"\n' "$SLURM_CONF" >"$STATE/bin/srun"
    chmod 755 "$STATE/bin/srun"
}

unlink_default_conf() {
    if [[ -L $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == "$SLURM_CONF" ]]; then
        rm -f "$DEFAULT_CONF"
        log "removed symlink $DEFAULT_CONF"
    fi
}

node_idle() {
    local st
    st=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null) || return 1
    [[ $st == idle || $st == mix || $st == alloc ]]
}

start_slurmctld() {
    launch slurmctld slurmctld -D -f "$SLURM_CONF"
    wait_for "slurmctld" "$LOG/slurmctld.log" "$LOG/slurmctld.stdout" -- \
        scontrol ping
}

start_slurmd() {
    launch slurmd slurmd -D -N localhost -f "$SLURM_CONF"
    wait_for "node localhost idle" "$LOG/slurmd.log" "$LOG/slurmd.stdout" "$LOG/slurmctld.log" -- \
        node_idle
}

cmd_start() {
    need_root
    local t0=$SECONDS missing
    missing=$(missing_packages)
    [[ -z $missing ]] || die "packages missing ($(tr '\n' ' ' <<<"$missing")); run '$0 install' first"
    mkdir -p "$STATE"
    # serialise concurrent start/stop on the same state dir
    exec 9>"$STATE/.lock"
    flock -w 120 9 || die "another start/stop holds $STATE/.lock (120s)"
    write_configs
    link_default_conf
    clean_stale_pidfiles
    start_munge
    start_mariadb
    start_slurmdbd
    register_accounting
    start_slurmctld
    start_slurmd
    # a node left DOWN/DRAIN from an earlier run is resumed by ReturnToService=2
    # once slurmd registers; check accounting end to end once more
    sacctmgr -n -P list assoc cluster="$CLUSTER" user="$(id -un)" format=account | grep -qx "$ACCOUNT" \
        || die "association $(id -un)/$ACCOUNT missing in accounting"
    log "cluster $CLUSTER up in $((SECONDS - t0))s; use: export SLURM_CONF=$SLURM_CONF"
}

cmd_stop() {
    [[ -d $PIDS ]] || { log "no state dir $STATE: nothing to stop"; return 0; }
    exec 9>"$STATE/.lock"
    # stop must always work: go on without the lock if it is not free soon
    flock -w 60 9 || log "WARNING: $STATE/.lock still held after 60s; stopping anyway"
    local i name pid comm
    local -a todo=()
    # jobs first: slurmstepd and job processes are not children of slurmd
    # and would outlive it, so cancel through SLURM and wait (bounded)
    if daemon_alive slurmctld && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        log "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
        squeue -h -o %i | xargs -r scancel 2>/dev/null || true
        local t=0
        while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && ((t < STOP_WAIT)); do
            sleep 1
            t=$((t + 1))
        done
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] || log "WARNING: jobs still listed after ${STOP_WAIT}s: $(squeue -h -o '%i %t' | tr '\n' ' ')"
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        pid=$(recorded_pid "$name")
        comm=$(daemon_comm "$name")
        [[ -n $pid ]] || continue
        if pid_is "$pid" "$comm"; then
            log "TERM $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            # slurm daemons first: wait for each before stopping what it needs
            local t=0
            while pid_is "$pid" "$comm" && ((t < STOP_WAIT * 4)); do
                sleep 0.25
                t=$((t + 1))
            done
            if pid_is "$pid" "$comm"; then
                log "KILL $name (pid $pid) after ${STOP_WAIT}s"
                kill -KILL "$pid" 2>/dev/null || true
                todo+=("$pid:$comm")
            fi
        else
            log "$name (pid $pid) not running"
        fi
        rm -f "$PIDS/$name.pid"
    done
    for i in "${todo[@]}"; do
        pid=${i%%:*}
        comm=${i#*:}
        local t=0
        while pid_is "$pid" "$comm" && ((t < 20)); do sleep 0.25; t=$((t + 1)); done
        pid_is "$pid" "$comm" && log "WARNING: pid $pid ($comm) survived KILL"
    done
    clean_stale_pidfiles
    unlink_default_conf
    log "stopped"
}

cmd_status() {
    local name pid rc=0
    echo "state dir: $STATE"
    echo "SLURM_CONF=$SLURM_CONF"
    for name in "${DAEMONS[@]}"; do
        pid=$(recorded_pid "$name")
        if daemon_alive "$name"; then
            printf '  %-10s running  pid %s\n' "$name" "$pid"
        else
            printf '  %-10s stopped%s\n' "$name" "${pid:+ (stale pid $pid)}"
            rc=1
        fi
    done
    if [[ -e $SLURM_CONF ]] && daemon_alive slurmctld; then
        sinfo -N -o '%N %P %t %c %m %G' || true
        squeue || true
        sacctmgr -n -P list assoc format=cluster,account,user 2>/dev/null || true
    fi
    return $rc
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    env)
        echo "export SLURM_CONF=$SLURM_CONF"
        if [[ -x $STATE/bin/srun ]]; then echo "export PATH=$STATE/bin:\$PATH"; fi
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
