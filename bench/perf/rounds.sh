#!/bin/bash
# rounds.sh N ONLY: old/new alternating `--rounds 60 --only ONLY`, N pairs;
# prints each run's pkit rows' ratios (vs std, vs tokio) with the load.
# The two binaries are $BENCH.old and $BENCH.new (default ./pkit-bench.{old,new}).
N=$1; ONLY=$2
for i in $(seq 1 $N); do
  for v in old new; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    ${BENCH:-./pkit-bench}.$v --rounds 60 --only "$ONLY" 2>/dev/null | grep "^| pkit" | grep -v "no spare\|processkit" | awk -F'|' -v v=$v -v l=$l '{gsub(/ +$/,"",$2); print v, "load="l, $2, "|", $6, "|", $7}'
  done
done
