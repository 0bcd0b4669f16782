//! Resource statistics of a group, from what the host offers: cgroup v2
//! `cpu.stat` / `memory.*`, cgroup v1 accounting where the group has v1
//! cgroups, else sums over the live members from `/proc`.

use std::time::Duration;

#[cfg(unix)]
use super::container::Container;
#[cfg(target_os = "linux")]
use super::container::Kind;

/// A snapshot of a group's resource use. A metric this host can't read is
/// `None`, never an error; so is one read from `/proc` (live members only)
/// when no member was left to read: the CPU time and peak of a group whose
/// members all exited are unknown there, not 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub(crate) active: usize,
    pub(crate) cpu: Option<Duration>,
    pub(crate) peak: Option<u64>,
    pub(crate) current: Option<u64>,
    pub(crate) sources: StatsSources,
}

/// Where a snapshot's figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StatsSources {
    pub cpu: &'static str,
    pub memory: &'static str,
}

impl Stats {
    /// Live processes in the group.
    pub fn active_processes(&self) -> usize {
        self.active
    }

    /// CPU time used by the group. For a cgroup this counts every process
    /// that ever ran in it (`cpu.stat`, or v1 `cpuacct.usage`); for a process
    /// group, only the live members (from `/proc`): `None` once every
    /// member exited (nothing left to measure), and a lower bound while
    /// some have.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cpu
    }

    /// The group's peak memory: the cgroup's own high-water mark
    /// (`memory.peak`, or v1 `memory.max_usage_in_bytes`) where it has
    /// memory accounting; otherwise, from `/proc`, the sum of each live
    /// member's own peak (an upper bound on the live members' peak, which
    /// forgets exited members), and `None` once no live member is left to
    /// read (every member exited, or only zombies remain).
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.peak
    }

    /// The group's memory in use now (`memory.current`, v1
    /// `memory.usage_in_bytes`, or the sum of the live members' resident
    /// sets: 0 once every member exited, as a process no longer alive holds
    /// none).
    pub fn current_memory_bytes(&self) -> Option<u64> {
        self.current
    }

    /// Where the CPU figure came from (`cgroup v2 cpu.stat`, `/proc`, …),
    /// or would have: a `/proc (live members)` figure is `None` when no
    /// member was left to read.
    pub fn cpu_source(&self) -> &'static str {
        self.sources.cpu
    }

    /// Where the memory figures came from.
    pub fn memory_source(&self) -> &'static str {
        self.sources.memory
    }
}

#[cfg(unix)]
impl Container {
    /// A snapshot of the group's resource use.
    pub(crate) fn stats(&self) -> std::io::Result<Stats> {
        let members = self.members()?;
        #[allow(unused_mut)]
        let mut stats = Stats {
            active: members.len(),
            ..Stats::default()
        };
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(cg) = &self.kind {
            if let Some(usec) = cg
                .read_attr("cpu.stat")
                .and_then(|t| field(&t, "usage_usec"))
            {
                // Less the CPU time of a reused directory's earlier groups.
                let usec = usec.saturating_sub(cg.cpu_base());
                stats.cpu = Some(Duration::from_micros(usec));
                stats.sources.cpu = "cgroup v2 cpu.stat";
            }
            let number = |t: Option<String>| t.and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(cur) = number(cg.read_attr("memory.current")) {
                stats.current = Some(cur);
                stats.peak = number(cg.read_attr("memory.peak"));
                stats.sources.memory = "cgroup v2 memory.current/memory.peak";
            } else if let Some(g) = self.limits.v1("memory") {
                stats.current = number(g.read("memory.usage_in_bytes"));
                stats.peak = number(g.read("memory.max_usage_in_bytes"));
                stats.sources.memory = "cgroup v1 memory.usage_in_bytes/max_usage_in_bytes";
            }
        }
        // Off Linux: the count only (as the model's macOS column says).
        #[cfg(target_os = "linux")]
        if stats.cpu.is_none() || stats.current.is_none() {
            // CPU time and peak are sums over the members read: with none
            // read (every member exited), nothing was measured, and they
            // are unknown, not 0. The memory in use is 0 then: a process
            // not alive holds none.
            let (mut cpu, mut rss, mut hwm) = (None::<Duration>, 0u64, None::<u64>);
            for &pid in &members {
                if let Some((c, r, h)) = super::proc_usage(pid) {
                    cpu = Some(cpu.unwrap_or_default() + c);
                    rss += r.unwrap_or(0);
                    if let Some(h) = h {
                        hwm = Some(hwm.unwrap_or(0) + h);
                    }
                }
            }
            if stats.cpu.is_none() {
                stats.cpu = cpu;
                stats.sources.cpu = "/proc (live members)";
            }
            if stats.current.is_none() {
                stats.current = Some(rss);
                stats.peak = hwm;
                stats.sources.memory = "/proc (live members)";
            }
        }
        Ok(stats)
    }

    /// How many processes the kernel's OOM killer killed in the group, where
    /// it keeps count (a memory cap's cgroup).
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        None
    }

    /// How many processes the kernel's OOM killer killed in the group, where
    /// it keeps count (a memory cap's cgroup).
    #[cfg(target_os = "linux")]
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        let Kind::Cgroup(cg) = &self.kind else {
            return None;
        };
        // Only a memory cap's cgroup has the counter (and only then does a
        // run pay for reading it).
        if !self.limits.info.iter().any(|l| l.cap == "memory_max") {
            return None;
        }
        if let Some(n) = cg
            .read_attr("memory.events")
            .and_then(|t| field(&t, "oom_kill"))
        {
            return Some(n);
        }
        let g = self.limits.v1("memory")?;
        g.read("memory.oom_control")
            .and_then(|t| field(&t, "oom_kill"))
    }
}

/// The number after `key` in a `key value` per line file.
#[cfg(target_os = "linux")]
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}
