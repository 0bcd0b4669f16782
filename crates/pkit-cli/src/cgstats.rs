//! `--stats` for the whole tree: from the run's own cgroups (v2 `cpu.stat`,
//! `memory.peak`, `io.stat`; v1 `cpuacct`, `memory`, `blkio` on hybrid
//! hosts) where it has them, else from the rusage of pkit's reaped
//! children; every figure says where it came from.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sys::ChildUsage;

/// Figures for the whole tree (null where this host can't tell).
#[derive(Serialize, Debug, Default, Clone)]
pub struct TreeStats {
    pub user_cpu_us: Option<u64>,
    pub system_cpu_us: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    pub minor_faults: Option<u64>,
    pub major_faults: Option<u64>,
    pub voluntary_context_switches: Option<u64>,
    pub involuntary_context_switches: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Where each group of figures came from: `cgroup v2 cpu.stat`,
    /// `cgroup v1 memory`, `rusage` (every reaped descendant: pkit reaps
    /// the run's orphans as their subreaper), …
    pub cpu_source: Option<&'static str>,
    pub memory_source: Option<&'static str>,
    pub faults_source: Option<&'static str>,
    pub context_switches_source: Option<&'static str>,
    pub io_source: Option<&'static str>,
}

const RUSAGE: &str = "rusage";
/// The rusage sources when pkit is no subreaper (macOS, the BSDs).
const PARTIAL: &str = "no subreaper: orphaned descendants not counted";

/// The rusage source `src` says it misses orphans; `None` for a cgroup's.
fn partial_source(src: &str) -> Option<&'static str> {
    Some(match src {
        RUSAGE => "rusage (no subreaper: orphaned descendants not counted)",
        "rusage (largest single process)" => {
            "rusage (largest single process; no subreaper: orphaned descendants not counted)"
        }
        "rusage (block I/O)" => {
            "rusage (block I/O; no subreaper: orphaned descendants not counted)"
        }
        _ => return None,
    })
}

/// The cgroups a run's program is in that belong to the run alone (not
/// shared with pkit itself).
#[derive(Debug, Default, Clone)]
pub struct RunCgroups {
    pub v2: Option<PathBuf>,
    pub memory: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub blkio: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Placement {
    v2: Option<PathBuf>,
    v1: Vec<(Vec<String>, PathBuf)>,
}

fn mounts() -> (Option<PathBuf>, Vec<(Vec<String>, PathBuf)>) {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (mut v2, mut v1) = (None, Vec::new());
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut r = right.split(' ');
        let (fstype, _src, opts) = (r.next(), r.next(), r.next().unwrap_or(""));
        match fstype {
            Some("cgroup2") if v2.is_none() => v2 = Some(PathBuf::from(point)),
            Some("cgroup") => v1.push((
                opts.split(',').map(str::to_string).collect(),
                PathBuf::from(point),
            )),
            _ => {}
        }
    }
    (v2, v1)
}

fn placement(pid: &str) -> Placement {
    let (v2_root, v1_mounts) = mounts();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut p = Placement::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctl.is_empty() {
            p.v2 = v2_root.as_ref().map(|r| r.join(rel));
        } else {
            let ctls: Vec<String> = ctl.split(',').map(str::to_string).collect();
            if let Some((_, mount)) = v1_mounts
                .iter()
                .find(|(opts, _)| ctls.iter().all(|c| opts.contains(c)))
            {
                p.v1.push((ctls, mount.join(rel)));
            }
        }
    }
    p
}

impl RunCgroups {
    /// The run's cgroups: the v2 directory named in the group's
    /// description, and the v1 ones the library makes with the same name
    /// under pkit's own v1 cgroups (hybrid hosts). Not read from the
    /// program's `/proc/<pid>/cgroup`: a program that already exited shows
    /// the root cgroups there.
    pub fn of_group(description: &str) -> RunCgroups {
        let Some(v2) = description
            .split_once("cgroup v2 at ")
            .and_then(|(_, rest)| rest.split(';').next())
            .map(PathBuf::from)
        else {
            return RunCgroups::default();
        };
        let own = placement("self");
        let v1 = |ctl: &str| {
            let name = v2.file_name()?;
            let (_, dir) = own.v1.iter().find(|(c, _)| c.iter().any(|x| x == ctl))?;
            let p = dir.join(name);
            p.is_dir().then_some(p)
        };
        RunCgroups {
            memory: v1("memory"),
            cpuacct: v1("cpuacct"),
            blkio: v1("blkio"),
            v2: v2.is_dir().then_some(v2),
        }
    }

    /// How many processes the OOM killer killed in the run's memory
    /// cgroup; `None` without one.
    pub fn oom_kills(&self) -> Option<u64> {
        if let Some(n) = self
            .v2
            .as_ref()
            .and_then(|d| field(d, "memory.events", "oom_kill"))
        {
            return Some(n);
        }
        self.memory
            .as_ref()
            .and_then(|d| field(d, "memory.oom_control", "oom_kill"))
    }

    /// The figures the run's cgroups have (read before they are removed).
    pub fn read(&self) -> TreeStats {
        let mut s = TreeStats::default();
        if let Some(d) = &self.v2 {
            if let (Some(u), Some(sy)) = (
                field(d, "cpu.stat", "user_usec"),
                field(d, "cpu.stat", "system_usec"),
            ) {
                (s.user_cpu_us, s.system_cpu_us) = (Some(u), Some(sy));
                s.cpu_source = Some("cgroup v2 cpu.stat");
            }
            if let Some(peak) = number(&d.join("memory.peak")) {
                s.peak_memory_bytes = Some(peak);
                s.memory_source = Some("cgroup v2 memory.peak");
            }
            if let (Some(min), Some(maj)) = (
                field(d, "memory.stat", "pgfault"),
                field(d, "memory.stat", "pgmajfault"),
            ) {
                (s.minor_faults, s.major_faults) = (Some(min.saturating_sub(maj)), Some(maj));
                s.faults_source = Some("cgroup v2 memory.stat");
            }
            if let Some((r, w)) = io_stat(d) {
                (s.io_read_bytes, s.io_write_bytes) = (Some(r), Some(w));
                s.io_source = Some("cgroup v2 io.stat");
            }
        }
        if s.cpu_source.is_none() {
            if let Some(d) = &self.cpuacct {
                let ns = |f: &str| number(&d.join(f));
                if let (Some(u), Some(sy)) = (ns("cpuacct.usage_user"), ns("cpuacct.usage_sys")) {
                    (s.user_cpu_us, s.system_cpu_us) = (Some(u / 1000), Some(sy / 1000));
                    s.cpu_source = Some("cgroup v1 cpuacct");
                }
            }
        }
        if let Some(d) = &self.memory {
            if s.memory_source.is_none() {
                if let Some(peak) = number(&d.join("memory.max_usage_in_bytes")) {
                    s.peak_memory_bytes = Some(peak);
                    s.memory_source = Some("cgroup v1 memory.max_usage_in_bytes");
                }
            }
            if s.faults_source.is_none() {
                if let (Some(min), Some(maj)) = (
                    field(d, "memory.stat", "total_pgfault"),
                    field(d, "memory.stat", "total_pgmajfault"),
                ) {
                    (s.minor_faults, s.major_faults) = (Some(min.saturating_sub(maj)), Some(maj));
                    s.faults_source = Some("cgroup v1 memory.stat");
                }
            }
        }
        if s.io_source.is_none() {
            if let Some((r, w)) = self.blkio.as_ref().and_then(|d| blkio(d)) {
                (s.io_read_bytes, s.io_write_bytes) = (Some(r), Some(w));
                s.io_source = Some("cgroup v1 blkio");
            }
        }
        s
    }
}

impl TreeStats {
    /// Fills what the cgroups could not give from `usage` (the rusage of
    /// reaped children: every descendant when pkit was their `subreaper`,
    /// else the program and what it reaped itself, which the sources say).
    pub fn fill_from(&mut self, usage: Option<ChildUsage>, subreaper: bool) {
        let Some(u) = usage else { return };
        if !subreaper {
            self.fill_from(Some(u), true);
            for s in [
                &mut self.cpu_source,
                &mut self.memory_source,
                &mut self.faults_source,
                &mut self.context_switches_source,
                &mut self.io_source,
            ] {
                if let Some(src) = s.as_mut() {
                    if let Some(partial) = partial_source(src) {
                        *src = partial;
                    }
                }
            }
            return;
        }
        if self.cpu_source.is_none() {
            (self.user_cpu_us, self.system_cpu_us) = (Some(u.user_us), Some(u.system_us));
            self.cpu_source = Some(RUSAGE);
        }
        // 0: unknown (see `ChildUsage::since`).
        if self.memory_source.is_none() && u.max_rss_bytes > 0 {
            self.peak_memory_bytes = Some(u.max_rss_bytes);
            self.memory_source = Some("rusage (largest single process)");
        }
        if self.faults_source.is_none() {
            (self.minor_faults, self.major_faults) = (Some(u.minor_faults), Some(u.major_faults));
            self.faults_source = Some(RUSAGE);
        }
        (
            self.voluntary_context_switches,
            self.involuntary_context_switches,
        ) = (Some(u.voluntary_switches), Some(u.involuntary_switches));
        self.context_switches_source = Some(RUSAGE);
        if self.io_source.is_none() {
            (self.io_read_bytes, self.io_write_bytes) =
                (Some(u.blocks_in * 512), Some(u.blocks_out * 512));
            self.io_source = Some("rusage (block I/O)");
        }
    }

    /// Windows: the Job Object's accounting, which covers every process
    /// that ran in the job. It has one CPU figure (user and kernel time
    /// together), given as `user_cpu_us` with `system_cpu_us` unknown.
    #[cfg(windows)]
    pub fn fill_from_job(&mut self, job: &pkit::Stats) {
        if let Some(cpu) = job.cpu_time() {
            (self.user_cpu_us, self.system_cpu_us) = (Some(cpu.as_micros() as u64), None);
            self.cpu_source = Some("job accounting (user and kernel time together)");
        }
        if let Some(peak) = job.peak_memory_bytes() {
            self.peak_memory_bytes = Some(peak);
            self.memory_source = Some("job accounting (peak committed memory)");
        }
    }

    /// Whether a figure comes from rusage without a subreaper (so misses
    /// what orphaned descendants used).
    pub fn partial(&self) -> bool {
        self.cpu_source.is_some_and(|s| s.contains(PARTIAL))
    }

    /// Whether CPU and memory both cover the whole tree (a cgroup).
    pub fn whole_tree(&self) -> bool {
        let cg =
            |s: Option<&str>| s.is_some_and(|s| s.starts_with("cgroup") || s.starts_with("job"));
        cg(self.cpu_source) && cg(self.memory_source)
    }
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The number after `key` in a `key value` per line file.
fn field(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}

fn io_stat(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("io.stat")).ok()?;
    let (mut r, mut w) = (0, 0);
    for kv in text.split_whitespace() {
        if let Some(v) = kv.strip_prefix("rbytes=") {
            r += v.parse::<u64>().unwrap_or(0);
        } else if let Some(v) = kv.strip_prefix("wbytes=") {
            w += v.parse::<u64>().unwrap_or(0);
        }
    }
    Some((r, w))
}

fn blkio(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes_recursive"))
        .or_else(|_| std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes")))
        .ok()?;
    let (mut r, mut w) = (0, 0);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, n] = parts[..] {
            let n = n.parse::<u64>().unwrap_or(0);
            match op {
                "Read" => r += n,
                "Write" => w += n,
                _ => {}
            }
        }
    }
    Some((r, w))
}
