#!/bin/bash
# paired.sh PORT ROUNDS LABEL : alternating lt_equiv / loadgen / tokio_closed rounds, 1 s warmup + 3 s measured each
PORT=$1; ROUNDS=$2; LABEL=$3; R=${R:-target/release}
for i in $(seq 1 $ROUNDS); do
  l=$(taskset -c 0 ./lt_equiv 100 127.0.0.1 $PORT 3 /ws | awk '/average/{print $2}')
  taskset -c 0 $R/loadgen ws://127.0.0.1:$PORT/ws -c 100 -d 3 -w 1 -q --json ${TMPDIR:-/tmp}/lg.json >/dev/null
  g=$(python3 -c "import json;print(int(json.load(open('${TMPDIR:-/tmp}/lg.json'))['msgs_per_sec']))")
  t=$(taskset -c 0 $R/examples/tokio_closed 127.0.0.1:$PORT 100 3 | awk '{print $2}')
  echo "$LABEL round $i lt_equiv $l loadgen $g tokio_closed $t ratio_loadgen_lt $(python3 -c "print(round($g/$l,3))") load $(cut -d' ' -f1 /proc/loadavg)"
done
