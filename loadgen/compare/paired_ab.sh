#!/bin/bash
# paired_ab.sh PORT ROUNDS LABEL : each round runs lt_equiv, loadgen BEFORE and
# loadgen AFTER against the server on PORT, 1 s warmup + 3 s measured each,
# 100 connections x 20 B closed loop, all on CPU 0. The order rotates every
# round so neither binary always runs right after lt_equiv.
#   LT=path/to/lt_equiv BEFORE=path/to/old/loadgen AFTER=path/to/new/loadgen
set -eu
PORT=$1; ROUNDS=$2; LABEL=$3
LT=${LT:-./lt_equiv}; BEFORE=${BEFORE:?}; AFTER=${AFTER:?}
J=${TMPDIR:-/tmp}/paired_ab.$$.json
lg() { taskset -c 0 "$1" ws://127.0.0.1:$PORT/ws -c 100 -d 3 -w 1 -q --json "$J" >/dev/null || true
       python3 -c "import json;print(int(json.load(open('$J'))['msgs_per_sec']))"; }
for i in $(seq 1 "$ROUNDS"); do
  declare -A r=()
  order=(lt before after); k=$(( (i - 1) % 3 )); order=("${order[@]:$k}" "${order[@]:0:$k}")
  for c in "${order[@]}"; do
    case $c in
      lt) r[lt]=$(taskset -c 0 "$LT" 100 127.0.0.1 "$PORT" 3 /ws | awk '/average/{print $2}') ;;
      before) r[before]=$(lg "$BEFORE") ;;
      after) r[after]=$(lg "$AFTER") ;;
    esac
  done
  echo "$LABEL round $i order ${order[*]} lt_equiv ${r[lt]} before ${r[before]} after ${r[after]}" \
       "ratio_before $(python3 -c "print(round(${r[before]}/${r[lt]},3))")" \
       "ratio_after $(python3 -c "print(round(${r[after]}/${r[lt]},3))")" \
       "load $(cut -d' ' -f1 /proc/loadavg)"
  unset r
done
rm -f "$J"
