#!/usr/bin/env bash
# A one-node SLURM cluster (Debian's slurm 22.05 + munge) in this network namespace, then "$@".
# Run as: unshare -n bash slurm_node.sh FOLDER COMMAND...   (root; the tests do this)
# Slurm will not bind a loopback-only host, so lo gets an extra address in the private namespace.
# Every daemon is stopped by the PID this script started it with.
set -euo pipefail
d=$1; shift
addr=10.213.7.1
ip link set lo up
ip addr add "$addr/32" dev lo
mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
chmod 0755 "$d/munge"          # munged refuses a socket folder others cannot traverse
mungekey -c -k "$d/munge.key" 2>/dev/null || dd if=/dev/urandom of="$d/munge.key" bs=1024 count=1 2>/dev/null
chmod 0600 "$d/munge.key"
munged -f -F --key-file="$d/munge.key" --socket="$d/munge/munge.socket" \
  --pid-file="$d/munge.pid" --log-file="$d/log/munged.log" --seed-file="$d/munge.seed" &
munge_pid=$!
cat > "$d/slurm.conf" <<CONF
ClusterName=nnexp
SlurmctldHost=$(hostname -s)($addr)
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
MailProg=/bin/true
MessageTimeout=5
NodeName=nnexp1 NodeAddr=$addr CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=nnexp1 Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$d/slurm.conf
for _ in $(seq 50); do [ -S "$d/munge/munge.socket" ] && break; sleep 0.1; done
slurmctld -D -i -f "$SLURM_CONF" >"$d/log/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -N nnexp1 -f "$SLURM_CONF" >"$d/log/slurmd.out" 2>&1 &
slurmd_pid=$!
trap 'kill $slurmd_pid $ctld_pid $munge_pid 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 40); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 0.2
done
sinfo -h -o %t | grep -q idle || { echo "slurm_node.sh: node did not become idle" >&2; tail -20 "$d"/log/*; exit 97; }
echo "slurm_node.sh: ready" >&2
"$@"
