#!/usr/bin/env python3
"""rsum.py FILE: medians of rounds.sh's ratio columns, per row and version."""
import re, sys, statistics as st, collections
d = collections.defaultdict(list); loads = []
for line in open(sys.argv[1]):
    m = re.match(r'(old|new) load=([\d.]+)\s+(.*?) \|\s+([\d.]+)x\s+\|\s+([\d.]+)x', line)
    if not m: continue
    d[(m[1], m[3])].append((float(m[4]), float(m[5]))); loads.append(float(m[2]))
print(f"load {min(loads):.1f}-{max(loads):.1f}")
for (v, row), xs in sorted(d.items(), key=lambda k: (k[0][1], k[0][0] != 'old')):
    print(f"{row:30s} {v}: ÷std median {st.median([a for a,b in xs]):.3f}  ÷tokio median {st.median([b for a,b in xs]):.3f}  ({', '.join(f'{b:.2f}' for a,b in xs)})")
