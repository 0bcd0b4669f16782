#!/usr/bin/env python3
"""Samples of the calling thread in pre (clock read .. clone3) and post
(reap .. clock read) of each run, grouped by leaf symbol; the contender
told by its reap: waitid = pkit, wait4 = tokio/std.
perf script -F tid,time,event,ip,sym"""
import re, sys, collections
path, want = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
main=None
cnt = collections.defaultdict(collections.Counter); runs = collections.Counter()
seg=None
def close(seg):
    if not seg or not seg['reap'] or not seg['cloned']: return
    who = seg['reap']
    runs[who]+=1
    for ph in ('pre','post'):
        for s in seg[ph]: cnt[(who,ph)][s]+=1
for line in open(path):
    m = re.match(r'\s*(\d+)\s+([\d.]+):\s+(?:\d+\s+)?(\S+):\s*(.*)', line)
    if not m: continue
    tid, name, rest = int(m[1]), m[3], m[4]
    if main is None: main = tid
    if tid != main: continue
    ev = name.split(':')[-1].rstrip(':')
    if ev == 'sys_exit_clock_gettime':
        if seg is None or seg['state'] != 'pre':
            seg = {'state':'pre','pre':[],'post':[],'reap':None,'cloned':False}
    elif ev == 'sys_enter_clock_gettime':
        if seg and seg['state']=='post':
            close(seg)
        seg=None
    elif ev == 'sys_enter_clone3' and seg:
        if seg['state']=='pre': seg['state']='mid'; seg['cloned']=True
    elif ev in ('sys_exit_waitid','sys_exit_wait4') and seg and seg['cloned']:
        seg['state']='post'; seg['reap']='pkit' if ev=='sys_exit_waitid' else 'other'; seg['post']=[]
    elif 'cpu-clock' in name and seg:
        parts = rest.split(None, 1)
        sym = parts[1] if len(parts)>1 else '?'
        sym = re.sub(r'\+0x[0-9a-f]+.*','',sym).strip()
        if seg['state'] in ('pre','post'): seg[seg['state']].append(sym)
for who in ('pkit','other'):
    c = cnt[(who,want)]
    print(f"== {who}: {want}, {sum(c.values())} samples over {runs[who]} runs ({sum(c.values())/max(runs[who],1):.2f}/run)")
    for s,k in c.most_common(top):
        print(f"  {k:6d} {s[:150]}")
