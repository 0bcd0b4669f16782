#!/bin/sh
# alt.sh N RUNS WITH: old and new release benches alternating, N times each,
# `--probe-runs RUNS --probe-with WITH`; prints each run's per-contender
# lines with the 1-minute load.
# The two binaries are $BENCH.old and $BENCH.new (default ./pkit-bench.{old,new}).
N=$1; R=$2; W=$3
for i in $(seq 1 $N); do
  for v in old new; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    ${BENCH:-./pkit-bench}.$v --probe-runs $R --probe-with $W 2>&1 | grep "median" | sed "s/^/$v load=$l /"
  done
done
