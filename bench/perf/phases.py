#!/usr/bin/env python3
"""Phase medians from `perf script -F tid,time,event,trace` of
`pkit-bench --probe-runs N --probe-with A+B`: on the calling thread (the
first tid seen), pre = last clock_gettime exit before the run's clone3
enter; post = the reap's exit (waitid/wait4 returning a pid or 0 with
WNOHANG info) to the next clock_gettime enter. Runs alternate A, B, ..."""
import re, sys, statistics
path, names = sys.argv[1], sys.argv[2].split('+')
ev = []
main = None
for line in open(path):
    m = re.match(r'\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)', line)
    if not m: continue
    tid, t, name, rest = int(m[1]), float(m[2]) * 1e6, m[3], m[4]
    if main is None: main = tid
    if tid != main: continue
    ev.append((t, name.split(':')[-1], rest))
runs = []  # (pre, clone->reap, post)
i, n = 0, len(ev)
last_clk = None
cur = None
for t, name, rest in ev:
    if name == 'sys_exit_clock_gettime':
        last_clk = t
        if cur and cur.get('reap') is not None and 'post' not in cur:
            pass
    elif name == 'sys_enter_clock_gettime':
        if cur and 'reap' in cur and 'post' not in cur:
            cur['post'] = t - cur['reap']
            runs.append(cur); cur = None
    elif name == 'sys_enter_clone3':
        cur = {'pre': t - last_clk if last_clk else None, 'clone': t}
    elif name in ('sys_exit_waitid', 'sys_exit_wait4') and cur is not None:
        # the last reap before the clock read
        cur['reap'] = t
res = {k: {'pre': [], 'mid': [], 'post': []} for k in names}
# skip the warm-up round
for k, r in enumerate(runs):
    who = names[k % len(names)]
    if k < len(names): continue
    if r['pre'] is None: continue
    res[who]['pre'].append(r['pre']); res[who]['post'].append(r['post']); res[who]['mid'].append(r['reap'] - r['clone'])
for who in names:
    d = res[who]
    if not d['pre']: print(who, 'no runs'); continue
    med = lambda x: statistics.median(x)
    print(f"{who:10s} runs {len(d['pre']):4d}  pre {med(d['pre']):7.1f}  clone->reap {med(d['mid']):7.1f}  post {med(d['post']):7.1f}  pre+post {med([a+b for a,b in zip(d['pre'],d['post'])]):7.1f} µs")
