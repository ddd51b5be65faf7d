#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine: a 4-task array builds 4
# shards of the bundled sample's 1,000 papers (scripts/slurm/build.sbatch),
# the dependent merge job joins them (scripts/slurm/merge.sbatch), and the
# merged library must equal a single-process `papersim build` of the same
# papers: same ids, equal vectors, same top-10 for 20 queries.
#
# Needs root (the daemons run as root; munged as the munge user) and only
# loopback networking. Installs slurmctld, slurmd, slurm-client and munge
# (Debian) when missing. Starts munged (unless one already answers),
# slurmctld and slurmd in a scratch folder with a generated slurm.conf, and
# stops only those it started, by their pid files. Prints
# `slurm-test: identical` on success. KEEP=1 keeps the scratch folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
    echo "slurm-test: needs root (it starts slurmctld, slurmd and munged)" >&2
    exit 2
fi
missing=()
for p in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
    command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "slurm-test: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

scripts/fetch-model.sh >/dev/null
cargo build --release --features hnsw-rs 2>&1 | tail -n 1
papersim="$root/target/release/papersim"
corpus="$root/data/arxiv-sample.jsonl.gz"

scratch=$(mktemp -d /tmp/papersim-slurm.XXXXXX)
chmod 755 "$scratch"
started=()   # pid files of the daemons this script started
jobs_submitted=()
stop() {
    local rc=$?
    if [ ${#jobs_submitted[@]} -gt 0 ]; then
        scancel "${jobs_submitted[@]}" 2>/dev/null || true
    fi
    # Last started, first stopped; only ours, by their pid files.
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        local f=${started[$i]} pid
        pid=$(cat "$f" 2>/dev/null || true)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$f"
    done
    if [ $rc != 0 ]; then
        echo "slurm-test: failed; logs in $scratch" >&2
        for f in "$scratch"/*.log "$scratch"/munge/*.log "$scratch"/*.out; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
        done
    elif [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$scratch"
    fi
    exit $rc
}
trap stop EXIT

# munge: the key, its socket folder, and munged as the munge user.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        install -d -o munge -g munge -m 700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 755 "$scratch/munge"
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/papersim-test.pid \
        --log-file="$scratch/munge/munged.log"
    started+=(/run/munge/papersim-test.pid)
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null
fi

# Two free ports from 16817 up (nothing answers on them).
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}
ctld_port=$(free_port 16817)
slurmd_port=$(free_port $((ctld_port + 1)))
node=$(hostname -s)
# What slurmd finds on this machine (CPUs, sockets, memory), so that it
# registers without a mismatch.
hw=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
mkdir -p "$scratch/state" "$scratch/spool"
export SLURM_CONF="$scratch/slurm.conf"
cat >"$SLURM_CONF" <<CONF
ClusterName=papersim-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$scratch/state
SlurmdSpoolDir=$scratch/spool
SlurmctldPidFile=$scratch/slurmctld.pid
SlurmdPidFile=$scratch/slurmd.pid
SlurmctldLogFile=$scratch/slurmctld.log
SlurmdLogFile=$scratch/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node $hw State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i -f "$SLURM_CONF"
started+=("$scratch/slurmctld.pid")
slurmd -f "$SLURM_CONF" -N "$node"
started+=("$scratch/slurmd.pid")
for i in $(seq 120); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    [ "$i" = 120 ] && { echo "slurm-test: node $node is '$state', not idle" >&2; exit 1; }
    sleep 0.5
done
echo "slurm-test: Slurm $(sinfo -V | cut -d' ' -f2) up on $node (127.0.0.1:$ctld_port), $(sinfo -h -o %c) CPUs"

# The array and the merge, as a user submits them; the settings the
# scripts read come from the environment.
export PAPERSIM="$papersim" CORPUS="$corpus" SHARDS=4 \
    SHARDS_DIR="$scratch/shards" LIBRARY="$scratch/merged"
export BUILD_FLAGS="--model $root/models/all-MiniLM-L6-v2"
start=$(date +%s)
array=$(sbatch --parsable --array=0-3 --cpus-per-task=1 --mem=1G --time=30 \
    --chdir="$scratch" --output="$scratch/build-%a.out" scripts/slurm/build.sbatch)
jobs_submitted+=("$array")
merge=$(sbatch --parsable --dependency="afterok:$array" --cpus-per-task=1 --mem=1G \
    --time=30 --chdir="$scratch" --output="$scratch/merge.out" --wait \
    scripts/slurm/merge.sbatch)
echo "slurm-test: array $array (4 shards) and merge $merge done in $(($(date +%s) - start)) s"
tail -n 1 "$scratch/merge.out"

# The same papers in one process.
"$papersim" build --corpus "$corpus" --library "$scratch/single" \
    --model "$root/models/all-MiniLM-L6-v2" >"$scratch/single.out"
tail -n 1 "$scratch/single.out"

for lib in merged single; do
    "$papersim" export --library "$scratch/$lib" --vectors "$scratch/$lib.npy" \
        --metadata "$scratch/$lib.jsonl" >/dev/null
done
# 20 queries: the titles of every 50th paper, searched in both libraries.
python3 - "$scratch/single.jsonl" >"$scratch/queries.txt" <<'PY'
import json, sys
papers = [json.loads(l) for l in open(sys.argv[1])]
for p in papers[::50][:20]:
    print(p["title"])
PY
for lib in merged single; do
    while IFS= read -r q; do
        "$papersim" search --library "$scratch/$lib" -k 10 --json "$q" |
            python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)["results"]))'
    done <"$scratch/queries.txt" >"$scratch/$lib.top10"
done
python3 - "$scratch" <<'PY'
import json, struct, sys
d = sys.argv[1]

def npy(path):
    b = open(path, "rb").read()
    n = struct.unpack("<H", b[8:10])[0]
    header = b[10:10 + n].decode()
    shape = eval(header)["shape"]
    data = struct.unpack("<%df" % (shape[0] * shape[1]), b[10 + n:])
    return shape, data

def ids(path):
    return [json.loads(l)["id"] for l in open(path)]

fail = []
a_ids, b_ids = ids(d + "/merged.jsonl"), ids(d + "/single.jsonl")
if sorted(a_ids) != sorted(b_ids):
    fail.append("ids differ: %d merged, %d single, %d in common"
                % (len(a_ids), len(b_ids), len(set(a_ids) & set(b_ids))))
else:
    (sa, va), (sb, vb) = npy(d + "/merged.npy"), npy(d + "/single.npy")
    dim = sa[1]
    row_b = {i: k for k, i in enumerate(b_ids)}
    worst = 0.0
    for k, i in enumerate(a_ids):
        j = row_b[i]
        x, y = va[k * dim:(k + 1) * dim], vb[j * dim:(j + 1) * dim]
        worst = max(worst, max(abs(p - q) for p, q in zip(x, y)))
    if worst > 1e-6:
        fail.append("vectors differ by up to %g" % worst)
    print("slurm-test: %d papers, same ids%s, vectors differ by at most %g"
          % (len(a_ids), " in the same order" if a_ids == b_ids else "", worst))
ta = open(d + "/merged.top10").read().splitlines()
tb = open(d + "/single.top10").read().splitlines()
if len(ta) != 20 or ta != tb:
    fail.append("top-10 differ for %d of %d queries"
                % (sum(x != y for x, y in zip(ta, tb)), len(tb)))
if fail:
    sys.exit("slurm-test: NOT identical: " + "; ".join(fail))
print("slurm-test: same top-10 for %d queries" % len(ta))
PY
echo "slurm-test: identical"
