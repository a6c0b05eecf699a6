#!/usr/bin/env bash
# Runs every troupe-bench benchmark several times, keeps the JSON lines and
# prints a Markdown table of the medians, then those medians against the
# peer figures and targets of the benchmark issue (for runs at the default n,
# the only ones the peer figures describe).
#
#   scripts/bench.sh <path/to/troupe-bench> [results.jsonl]
#
# The results file defaults to bench-results.jsonl in the build directory
# (the parent of the binary's bench/ folder); it is rewritten on each call.
# Environment:
#   BENCH_RUNS     runs per benchmark (default 3)
#   BENCH_ONLY     space-separated benchmark names to run (default: all)
#   BENCH_ARGS     extra arguments for every run, e.g. "--workers 2"
#   BENCH_TIMEOUT  seconds one run may take before it counts as a hang and
#                  the benchmark's remaining runs are skipped (default 120;
#                  a healthy run of any benchmark takes a few seconds)
# Exit status: 0 when every run passed its own verification, 1 otherwise.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 <path/to/troupe-bench> [results.jsonl]" >&2
    exit 2
fi
bin=$1
if [ ! -x "$bin" ]; then
    echo "bench.sh: $bin is not an executable" >&2
    exit 2
fi
if [ $# -eq 2 ]; then
    results=$2
else
    dir=$(cd "$(dirname "$bin")" && pwd)
    [ "$(basename "$dir")" = bench ] && dir=$(dirname "$dir")
    results=$dir/bench-results.jsonl
fi
runs=${BENCH_RUNS:-3}
limit=${BENCH_TIMEOUT:-120}
read -r -a extra <<<"${BENCH_ARGS:-}"
if [ -n "${BENCH_ONLY:-}" ]; then
    read -r -a names <<<"$BENCH_ONLY"
else
    mapfile -t names < <("$bin" --list)
fi
command -v python3 >/dev/null || { echo "bench.sh: needs python3" >&2; exit 2; }

: >"$results"
failed=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

for name in "${names[@]}"; do
    for ((r = 1; r <= runs; r++)); do
        printf 'bench.sh: %-12s run %d/%d ... ' "$name" "$r" "$runs" >&2
        start=$(date +%s%N)
        set +e
        line=$(timeout --kill-after=10 "$limit" "$bin" "$name" "${extra[@]}" 2>"$err")
        rc=$?
        set -e
        ms=$((($(date +%s%N) - start) / 1000000))
        wall=$(printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)))
        if [ $rc -eq 0 ] && [ -n "$line" ]; then
            echo "$line" >>"$results"
            echo "ok (${wall} s)" >&2
            continue
        fi
        failed=1
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            why="timeout after ${limit} s"
        else
            why="exit $rc: $(grep -m1 '^FAIL:' "$err" || tail -n1 "$err")"
        fi
        echo "FAILED: $why" >&2
        python3 -c 'import json, sys
print(json.dumps({"runtime": "troupe", "bench": sys.argv[1], "error": sys.argv[2]}))' \
            "$name" "$why" >>"$results"
        # A hang would only hang again: skip the remaining runs.
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            break
        fi
    done
done

python3 - "$results" "${names[@]}" <<'EOF'
import json
import statistics
import sys

path, names = sys.argv[1], sys.argv[2:]
ok, errors = {}, {}
with open(path) as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        if "error" in rec:
            errors.setdefault(rec["bench"], []).append(rec["error"])
        else:
            ok.setdefault(rec["bench"], []).append(rec)

def med(recs, key, scale=1.0):
    vals = [r[key] * scale for r in recs if key in r]
    return statistics.median(vals) if vals else None

def fmt(v, digits):
    if v is None:
        return ""
    return f"{v:,.{digits}f}"

print("| benchmark | runs | n | per_op_ns | M ops/s | seconds | rss MB | bytes/actor |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    recs = ok.get(name, [])
    errs = errors.get(name, [])
    if not recs:
        print(f"| {name} | 0 | | {'; '.join(errs) or 'no result'} | | | | |")
        continue
    runs = f"{len(recs)}" + (f" ({len(errs)} failed)" if errs else "")
    print(f"| {name} | {runs} | {recs[0]['n']:,} "
          f"| {fmt(med(recs, 'per_op_ns'), 1)} "
          f"| {fmt(med(recs, 'ops_per_s', 1e-6), 2)} "
          f"| {fmt(med(recs, 'seconds'), 3)} "
          f"| {fmt(med(recs, 'rss_kb', 1 / 1024), 1)} "
          f"| {fmt(med(recs, 'bytes_per_actor'), 0)} |")
workers = sorted({r["workers"] for recs in ok.values() for r in recs
                  if "workers" in r})
note = f"workers: {', '.join(map(str, workers))}; " if workers else ""
print(f"\nMedians of the runs above; {note}raw lines in {path}.")

# The peer figures and targets of the benchmark issue: Erlang/OTP 25 (2
# schedulers), Go 1.19 (GOMAXPROCS=2), CAF 0.17.6 (2 workers), medians of 3
# on a 2-vCPU x86-64 Debian 12 machine, same definitions as troupe-bench.
# (bench, n, metric, key, scale, lower is better, Erlang, Go, CAF, target)
PEERS = [
    ("pingpong", 1000000, "ns per round trip", "per_op_ns", 1, True,
     809, 404, 1153, 100),
    ("ring", 5000000, "ns per hop", "per_op_ns", 1, True, 420, 259, 504, 60),
    ("counting", 10000000, "M msgs/s", "ops_per_s", 1e-6, False,
     6.4, 18.2, 2.6, 55),
    ("fanin", 10000000, "M msgs/s", "ops_per_s", 1e-6, False,
     2.8, 7.7, 2.8, 25),
    ("spawn", 1000000, "k spawns/s", "ops_per_s", 1e-3, False,
     422, 752, 342, 3000),
    ("spawn", 1000000, "peak RSS MB", "rss_kb", 1 / 1024, True,
     44, 34, 594, 34),
    ("idle_memory", 100000, "bytes per actor", "bytes_per_actor", 1, True,
     2949, 3467, 1355, 128),
    ("big", 20000, "M msgs/s", "ops_per_s", 1e-6, False, 2.0, 5.4, 2.0, 20),
    ("skynet", 1000000, "ms for the whole tree", "seconds", 1e3, True,
     2397, 924, 2976, 300),
    ("chameneos", 200000, "ns per meeting", "per_op_ns", 1, True,
     2153, 1301, 2216, 430),
]

def num(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"

rows = [p for p in PEERS if p[0] in ok and ok[p[0]][0]["n"] == p[1]]
if rows:
    print("\n| benchmark | metric | troupe | Erlang | Go | CAF | vs best peer "
          "| target | vs target |")
    print("|---|---|---|---|---|---|---|---|---|")
for name, _, metric, key, scale, lower, erl, go, caf, target in rows:
    v = med(ok[name], key, scale)
    if v is None or v <= 0:
        continue
    best = min(erl, go, caf) if lower else max(erl, go, caf)
    # Both factors read "how many times better than": above 1 is ahead.
    peer = best / v if lower else v / best
    goal = target / v if lower else v / target
    status = "met" if goal >= 1 else f"{1 / goal:.2f}x off"
    print(f"| {name} | {metric} | {num(v)} | {num(erl)} | {num(go)} "
          f"| {num(caf)} | {peer:.2f}x | {'<=' if lower else '>='} "
          f"{num(target)} | {status} |")
EOF
exit $failed
