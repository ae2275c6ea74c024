#!/usr/bin/env bash
# A throwaway single-node Slurm cluster for lem's `runtime: slurm` tests (Debian/Ubuntu, root).
#
#   .ci/slurm-setup.sh                 install Debian's slurmctld, slurmd, slurm-client and munge
#                                      (--no-install-recommends) when missing; the CI step (.ci/run)
#   .ci/slurm-setup.sh start DIR [N]   write DIR/slurm.conf and DIR/gres.conf for one node with N
#                                      fake GPUs (default 4: character devices made with mknod under
#                                      DIR/dev, major 195 like /dev/nvidiaN), then start munged,
#                                      slurmctld and slurmd as plain processes with pid files in DIR/run,
#                                      on free TCP ports, and wait until the node is idle
#   .ci/slurm-setup.sh stop DIR        stop every daemon started there, by its pid file
#
# Clients reach the cluster with SLURM_CONF=DIR/slurm.conf (its own munge socket, its own ports), so
# several clusters (one per test file) and a real /etc/slurm never mix. test/slurm/cluster.ts calls
# `start` before and `stop` after its tests. Nothing here is a real GPU: the device nodes only let
# slurmd's GRES bookkeeping hand out gpu:N, which is what the tests check (disjoint GPUs per step).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
  command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
  command -v srun >/dev/null 2>&1 || missing+=(slurm-client)
  command -v munged >/dev/null 2>&1 || missing+=(munge)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "slurm-setup: slurmctld, slurmd, slurm-client and munge already installed ($(slurmd -V))"
    return
  fi
  echo "slurm-setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "slurm-setup: installed ($(slurmd -V))"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_cluster() {
  local dir=$1 gpus=${2:-4}
  [ "$(id -u)" -eq 0 ] || { echo "slurm-setup: start needs root (mknod, slurmd)" >&2; exit 1; }
  mkdir -p "$dir"/{run,log,state,spool,dev,munge}
  dir=$(cd "$dir" && pwd)
  local node="lem$(basename "$dir" | tr -dc 'a-zA-Z0-9' | tail -c 12)"
  local i
  for ((i = 0; i < gpus; i++)); do
    # A character device, not a plain file: slurmd refuses plain files in gres.conf (and hands out no GPU).
    [ -e "$dir/dev/nvidia$i" ] || mknod -m 0666 "$dir/dev/nvidia$i" c 195 "$i" \
      || { echo "slurm-setup: mknod failed (a container without CAP_MKNOD?); the fake GPUs need it" >&2; exit 1; }
  done
  # munge: its own key, socket and pid file.
  if [ ! -s "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
    chmod 0400 "$dir/munge/munge.key"
  fi
  chmod 0755 "$dir" "$dir/munge"  # clients of any uid reach the socket; the key stays 0400
  local ctl_port slurmd_port
  ctl_port=$(free_port)
  slurmd_port=$(free_port)
  local cpus
  cpus=$(nproc)
  cat >"$dir/slurm.conf" <<EOF
# Written by .ci/slurm-setup.sh: one node, $gpus fake GPUs, no cgroups, no accounting.
ClusterName=lemtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=30
GresTypes=gpu
NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus Gres=gpu:$gpus State=UNKNOWN
PartitionName=lemtest Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  if [ "$gpus" -gt 0 ]; then
    echo "NodeName=$node Name=gpu File=$dir/dev/nvidia[0-$((gpus - 1))]" >"$dir/gres.conf"
  else
    : >"$dir/gres.conf"
  fi
  export SLURM_CONF="$dir/slurm.conf"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  # -i: ignore state left by an earlier cluster in this directory. Both daemonize and write their pid file.
  slurmctld -i
  slurmd -N "$node"
  local state=""
  for _ in $(seq 1 100); do
    state=$(sinfo -h -N -n "$node" -o '%t' 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    sleep 0.2
  done
  if [ "$state" != "idle" ]; then
    echo "slurm-setup: node $node did not become idle (state '$state'); logs:" >&2
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    exit 1
  fi
  echo "slurm-setup: cluster up in $dir (node $node, $gpus fake GPUs, slurmctld :$ctl_port, slurmd :$slurmd_port); SLURM_CONF=$dir/slurm.conf"
}

stop_cluster() {
  local dir=$1 f pid pids=()
  for f in slurmd slurmctld munged; do
    [ -s "$dir/run/$f.pid" ] || continue
    pid=$(cat "$dir/run/$f.pid")
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 1 100); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$dir"/run/*.pid
}

case "${1:-install}" in
  install) install_packages ;;
  start) start_cluster "${2:?usage: slurm-setup.sh start DIR [GPUS]}" "${3:-4}" ;;
  stop) stop_cluster "${2:?usage: slurm-setup.sh stop DIR}" ;;
  *) echo "usage: slurm-setup.sh [install | start DIR [GPUS] | stop DIR]" >&2; exit 2 ;;
esac
