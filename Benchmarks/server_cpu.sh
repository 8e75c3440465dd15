#!/bin/bash
# Engine-thread and whole-server CPU over the load phase of one Benchmarks/server_ingest.py
# run (SQLite), from /proc thread times; the engine thread is the thread with the most ticks
# (100 ticks = 1 s).  AB_WORK=/tmp/tripline-ab bash Benchmarks/server_cpu.sh BIN
# Run it alternately for two binaries to compare them.
BIN=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
( python3 "$here/server_ingest.py" "$BIN" sqlite > "$out" ) &
BG=$!
# Bounded waits: the load starts within a minute or the run failed.
for _ in $(seq 1 1200); do pgrep -f "$BIN load" >/dev/null && break; sleep 0.05; done
PID=$(pgrep -f "$BIN serve" | head -1)
declare -A T0 T1
for t in /proc/$PID/task/*; do T0[$t]=$(awk '{print $14+$15}' "$t/stat" 2>/dev/null); done
P0=$(awk '{print $14+$15}' /proc/$PID/stat); P1=$P0
while pgrep -f "$BIN load" >/dev/null; do
  for t in /proc/$PID/task/*; do v=$(awk '{print $14+$15}' "$t/stat" 2>/dev/null); [ -n "$v" ] && T1[$t]=$v; done
  v=$(awk '{print $14+$15}' /proc/$PID/stat 2>/dev/null); [ -n "$v" ] && P1=$v
  sleep 0.2
done
max=0
for t in "${!T1[@]}"; do d=$(( ${T1[$t]} - ${T0[$t]:-0} )); [ $d -gt $max ] && max=$d; done
wait $BG
echo "$(basename "$BIN"): engine thread ${max} ticks, server $(( P1 - P0 )) ticks | $(grep -o '[0-9]* events/s.*' "$out")"
rm -f "$out"
