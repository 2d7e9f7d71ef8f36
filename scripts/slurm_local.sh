#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for the tests and for trying `snakemake --profile slurm`.
#
#   scripts/slurm_local.sh start DIR   # install slurm-wlm and munge if missing, start the daemons
#   scripts/slurm_local.sh stop DIR    # stop the daemons this script started from DIR, remove its slurm.conf
#
# DIR holds the state, logs and pid files. The configuration goes to /etc/slurm/slurm.conf, where
# every Slurm command finds it (the Slurm executor's job steps drop SLURM_CONF from their
# environment); a slurm.conf this script did not write is never replaced. It is there only while
# the cluster runs: with Slurm installed, Snakemake imports the Slurm executor plugin at every
# start, and the plugin asks the controller for its configuration (`scontrol show config`, up to
# 10 s); a configuration naming a stopped controller made every Snakemake start wait those 10 s. No accounting database:
# job states come from squeue, and MinJobAge keeps finished jobs visible to it for 10 minutes.
# Needs root (or sudo) for apt-get, munged's key and /etc/slurm.
set -euo pipefail

action=${1:?usage: slurm_local.sh start|stop DIR}
dir=$(mkdir -p "${2:?usage: slurm_local.sh start|stop DIR}" && cd "$2" && pwd)
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

conf=/etc/slurm/slurm.conf
marker="# written by quranft scripts/slurm_local.sh"

stop() {
    for daemon in slurmd slurmctld munged; do
        if [ -f "$dir/$daemon.pid" ]; then
            $sudo kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
            rm -f "$dir/$daemon.pid"
        fi
    done
    if [ -f "$conf" ] && grep -qF "$marker" "$conf"; then
        $sudo rm -f "$conf"
    fi
}

if [ "$action" = stop ]; then
    stop
    exit 0
fi
[ "$action" = start ] || { echo "usage: slurm_local.sh start|stop DIR" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# munge: one key, one daemon for the machine
if [ ! -s /etc/munge/munge.key ]; then
    $sudo mkdir -p /etc/munge
    $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    $sudo chmod 400 /etc/munge/munge.key
    $sudo chown munge:munge /etc/munge/munge.key 2>/dev/null || true
fi
$sudo mkdir -p /run/munge /var/log/munge /var/lib/munge
$sudo chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n >/dev/null 2>&1; then
    $sudo -u munge munged 2>/dev/null || $sudo munged --force
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || pgrep -o munged > "$dir/munged.pid"
fi

host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
user=$(id -un)
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    echo "$conf exists and was not written by this script: not replacing it" >&2
    exit 1
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
$sudo mkdir -p /etc/slurm
$sudo tee "$conf" >/dev/null <<EOF
$marker
ClusterName=quranft-local
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
for daemon in slurmd slurmctld; do [ -f "$dir/$daemon.pid" ] && $sudo kill "$(cat "$dir/$daemon.pid")" 2>/dev/null; done
$sudo slurmctld
$sudo slurmd
for _ in $(seq 100); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "slurm ready: $conf"
        exit 0
    fi
    sleep 0.2
done
echo "slurm did not come up; see $dir/log" >&2
sinfo >&2 || true
exit 1
