#!/bin/bash
# user_cost.sh PORT ROUNDS LOADGEN... : CPU per message of each loadgen binary,
# split into user space and kernel, from perf cpu-clock samples (4 kHz) of a
# 0.5 s warmup + 4 s run at 100 x 20 B closed loop on CPU 0. Binaries take
# turns within each round. Needs perf; the server must be running on PORT.
# The message count is scaled by 4.5/4 to cover the warmup the samples include.
set -eu
PORT=$1; ROUNDS=$2; shift 2
F=4000; T=$(mktemp -d)
for i in $(seq 1 "$ROUNDS"); do
  for b in "$@"; do
    perf record -q -F $F -e cpu-clock -o "$T/p.data" taskset -c 0 "$b" ws://127.0.0.1:$PORT/ws \
      -c 100 -d 4 -w 0.5 -q --json "$T/r.json" >/dev/null 2>&1
    perf report -i "$T/p.data" --sort dso --stdio -g none -F overhead,sample,dso 2>/dev/null \
      | grep -v '^#' | grep -v '^$' > "$T/dso.txt"
    python3 - "$b" $F "$T" <<'PY'
import json, sys
b, f, t = sys.argv[1], int(sys.argv[2]), sys.argv[3]
j = json.load(open(f"{t}/r.json"))
user = kernel = 0
for line in open(f"{t}/dso.txt"):
    p = line.split()
    if len(p) < 3:
        continue
    if "kernel" in p[2]:
        kernel += int(p[1])
    else:
        user += int(p[1])
msgs = j["messages"] * 4.5 / 4
print(f"{b:<22} {int(j['msgs_per_sec']):>7} msg/s  user {user / f / msgs * 1e9:6.0f} ns/msg  "
      f"kernel {kernel / f / msgs * 1e9:6.0f} ns/msg")
PY
  done
done
rm -rf "$T"
