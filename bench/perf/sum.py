#!/usr/bin/env python3
"""sum.py FILE: pairs from alt.sh's output: per old/new run, this thread's CPU per run of
pkit and tokio, and pkit - tokio; medians."""
import re, sys, statistics as st
rows = []
for line in open(sys.argv[1]):
    m = re.match(r'(old|new) load=([\d.]+)\s+(\S+): median ([\d.]+) µs, CPU per run: this thread ([\d.]+)', line)
    if m: rows.append((m[1], float(m[2]), m[3], float(m[4]), float(m[5])))
# consecutive lines of one version, no contender twice: one process
runs = []; last=None
for r in rows:
    if last is None or r[0] != last[0] or r[2] in runs[-1][1]:
        runs.append((r[0], {})); 
    runs[-1][1][r[2]] = r; last = r
for v in ('old','new'):
    rs = [d for vv, d in runs if vv == v]
    names = sorted({k for d in rs for k in d})
    print(f"{v}: {len(rs)} processes, load {min(d[n][1] for d in rs for n in d):.1f}-{max(d[n][1] for d in rs for n in d):.1f}")
    for n in names:
        print(f"   {n:10s} CPU/run median {st.median([d[n][4] for d in rs if n in d]):7.1f}  ({', '.join(f'{d[n][4]:.1f}' for d in rs if n in d)});  wall median {st.median([d[n][3] for d in rs if n in d]):7.1f}")
    if len(names) == 2:
        a, b = [n for n in names if n.startswith('pkit')][0], [n for n in names if not n.startswith('pkit')][0]
        diffs = [d[a][4]-d[b][4] for d in rs]
        wd = [d[a][3]-d[b][3] for d in rs]
        print(f"   {a} - {b}: CPU median {st.median(diffs):.1f} ({', '.join(f'{x:.1f}' for x in diffs)}); wall median {st.median(wd):.1f} ({', '.join(f'{x:.1f}' for x in wd)})")
