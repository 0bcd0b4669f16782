//! Resource caps on a group: cgroup v2 controllers where the owner's cgroup
//! offers them, else cgroup v1 hierarchies (hybrid hosts), else an error.

use std::fmt;

#[cfg(target_os = "linux")]
use super::linux::cgroup::Cgroup;
#[cfg(target_os = "linux")]
use super::linux::v1::V1Cgroup;

/// No cgroup v1 off Linux: a type with no values.
#[cfg(all(unix, not(target_os = "linux")))]
#[derive(Debug)]
pub(crate) enum V1Cgroup {}

/// The caps requested for a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub memory_swap_max: Option<u64>,
    pub max_processes: Option<u64>,
    pub cpu_quota: Option<f64>,
    /// A CPU list in the kernel's format (`0-2,5`).
    pub cpus: Option<String>,
}

/// The kernel counts memory caps in whole pages and rounds down: a smaller
/// cap is no memory at all.
const PAGE: u64 = 4096;

/// The largest memory cap the kernel takes as given (`i64::MAX` bytes):
/// above it, it clamps.
const MAX_MEMORY: u64 = i64::MAX as u64;

/// The largest process cap Linux takes (`PID_MAX_LIMIT`, 2^22).
#[cfg(target_os = "linux")]
const MAX_PROCESSES: u64 = 1 << 22;

impl Limits {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The first cap requested, by name (for a refusal that covers all).
    pub(crate) fn first_cap(&self) -> &'static str {
        [
            ("memory_max", self.memory_max.is_some()),
            ("memory_high", self.memory_high.is_some()),
            ("memory_swap_max", self.memory_swap_max.is_some()),
            ("max_processes", self.max_processes.is_some()),
            ("cpu_quota", self.cpu_quota.is_some()),
            ("cpus", self.cpus.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
        .unwrap_or("memory_max")
    }

    /// Refuses zero, negative, non-finite and unrepresentable values.
    pub(crate) fn validate(&self) -> Result<(), LimitError> {
        // `paged`: the cap takes no less than a page (a swap cap of 0 is
        // no swap at all).
        for (cap, bytes, paged) in [
            ("memory_max", self.memory_max, true),
            ("memory_high", self.memory_high, true),
            ("memory_swap_max", self.memory_swap_max, false),
        ] {
            match bytes {
                Some(0) if paged => {
                    return Err(LimitError::new(cap, "must be more than 0 bytes"))
                }
                Some(b) if paged && b < PAGE => {
                    return Err(LimitError::new(
                        cap,
                        format!(
                            "{b} bytes is less than one page ({PAGE} bytes): the kernel counts memory in whole pages and would round it down to nothing"
                        ),
                    ))
                }
                // The kernel counts these in pages of a signed long's
                // bytes and silently clamps a larger count: refused, not
                // made "max".
                Some(b) if b > MAX_MEMORY => {
                    return Err(LimitError::new(
                        cap,
                        format!("{b} bytes is above the kernel's largest memory cap ({MAX_MEMORY} bytes, 8 EiB - 1)"),
                    ))
                }
                _ => {}
            }
        }
        if let Some(list) = &self.cpus {
            super::cpu_list::check(list).map_err(|why| LimitError::new("cpus", why))?;
        }
        if self.max_processes == Some(0) {
            return Err(LimitError::new("max_processes", "must be at least 1"));
        }
        // `pids.max` takes at most PID_MAX_LIMIT, as many tasks as the
        // kernel can have: a larger number is a write error, not "max".
        #[cfg(target_os = "linux")]
        if let Some(n) = self.max_processes.filter(|&n| n > MAX_PROCESSES) {
            return Err(LimitError::new(
                "max_processes",
                format!("{n} is above the kernel's largest process cap ({MAX_PROCESSES}, PID_MAX_LIMIT)"),
            ));
        }
        if let Some(cores) = self.cpu_quota {
            if !cores.is_finite() || cores <= 0.0 {
                return Err(LimitError::new(
                    "cpu_quota",
                    format!("must be a positive number of cores, not {}", short(cores)),
                ));
            }
            if cores < 0.01 {
                return Err(LimitError::new(
                    "cpu_quota",
                    format!(
                        "{} cores is below the kernel's minimum quota of 0.01",
                        short(cores)
                    ),
                ));
            }
            // Linux takes at most 2^44 - 1 µs of CPU per 100 ms period; a
            // larger quota is refused here, not echoed by the kernel as a
            // write error (or saturated on the way).
            if cores > MAX_CPU_QUOTA_CORES {
                return Err(LimitError::new(
                    "cpu_quota",
                    format!(
                        "{} cores is above the kernel's largest quota ({MAX_CPU_QUOTA_CORES} cores)",
                        short(cores)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The largest CPU quota, in cores: Linux's largest CFS quota, 2^44 - 1 µs,
/// per 100 ms period, in whole cores.
const MAX_CPU_QUOTA_CORES: f64 = 175_921_860.0;

/// `x` for a message: as written unless that takes more than 20
/// characters (1e300 written out has 301), then in exponent form.
fn short(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 20 {
        plain
    } else {
        format!("{x:e}")
    }
}

/// A cap that can't be had, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitError {
    pub cap: &'static str,
    pub reason: String,
}

impl LimitError {
    pub(crate) fn new(cap: &'static str, reason: impl Into<String>) -> LimitError {
        LimitError {
            cap,
            reason: reason.into(),
        }
    }
}

/// How one cap of a group is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitInfo {
    /// `memory_max`, `memory_high`, `memory_swap_max`, `max_processes`,
    /// `cpu_quota` or `cpus`.
    pub cap: &'static str,
    /// The value in force, as written to the kernel.
    pub value: String,
    /// What enforces it, e.g. `cgroup v2 memory.max` or
    /// `cgroup v1 memory.limit_in_bytes`.
    pub enforced_by: String,
}

impl fmt::Display for LimitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} ({})", self.cap, self.value, self.enforced_by)
    }
}

#[cfg(unix)]
/// The caps applied to a group's cgroup.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The v1 cgroups the group's children join before exec.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub v1: Vec<(&'static str, V1Cgroup)>,
    pub info: Vec<LimitInfo>,
}

#[cfg(unix)]
impl Applied {
    /// Says, in an error of the program's start, that the group's memory
    /// cap is the likely cause when the kernel refused memory: a tiny cap
    /// makes the start fail with `ENOMEM` (no page for the new process) or
    /// `E2BIG` (no room for `exec`'s arguments), which alone would point at
    /// the program or its arguments.
    pub(crate) fn explain_spawn_failure(&self, e: std::io::Error) -> std::io::Error {
        let errno = e.raw_os_error();
        if !matches!(errno, Some(libc::ENOMEM) | Some(libc::E2BIG)) {
            return e;
        }
        let Some(cap) = self
            .info
            .iter()
            .find(|l| l.cap == "memory_max" || l.cap == "memory_high")
        else {
            return e;
        };
        std::io::Error::new(
            e.kind(),
            format!(
                "{e}: the group's memory cap ({} = {} bytes, {}) is probably too small for a program to start",
                cap.cap, cap.value, cap.enforced_by
            ),
        )
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn v1(&self, controller: &str) -> Option<&V1Cgroup> {
        self.v1
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, g)| g)
    }
}

#[cfg(target_os = "linux")]
const CPU_PERIOD_US: u64 = 100_000;

#[cfg(target_os = "linux")]
/// Applies `limits` to the group's v2 cgroup `cg` (named `name`).
pub(crate) fn apply(cg: &Cgroup, limits: &Limits) -> Result<Applied, LimitError> {
    let mut applied = Applied::default();
    if let Some(bytes) = limits.memory_max {
        // memory.swap.max appears once the controller is enabled.
        let _ = enable_v2(cg, "memory");
        let mut v2 = vec![("memory.max", bytes.to_string())];
        if v2_file_exists(cg, "memory.swap.max") {
            v2.push(("memory.swap.max", "0".into()));
        }
        cap(cg, &mut applied, "memory_max", "memory", &v2, |g| {
            g.write("memory.limit_in_bytes", &bytes.to_string())?;
            let mut files = vec!["memory.limit_in_bytes"];
            if g.has("memory.memsw.limit_in_bytes") {
                g.write("memory.memsw.limit_in_bytes", &bytes.to_string())?;
                files.push("memory.memsw.limit_in_bytes");
            }
            Ok((bytes.to_string(), files.join(" and ")))
        })?;
    }
    if let Some(bytes) = limits.memory_high {
        let why_not_v1 = "cgroup v1 has no equivalent of memory.high (memory.soft_limit_in_bytes only acts under host-wide memory pressure)";
        let v2 = [("memory.high", bytes.to_string())];
        cap_v2_only(cg, &mut applied, "memory_high", "memory", &v2, why_not_v1)?;
    }
    if let Some(bytes) = limits.memory_swap_max {
        let why_not_v1 = "cgroup v1 can't cap swap alone (memory.memsw.limit_in_bytes caps memory and swap together)";
        if enable_v2(cg, "memory").is_ok() && !v2_file_exists(cg, "memory.swap.max") {
            return Err(LimitError::new(
                "memory_swap_max",
                "the kernel does not account swap here (no memory.swap.max)",
            ));
        }
        let v2 = [("memory.swap.max", bytes.to_string())];
        cap_v2_only(
            cg,
            &mut applied,
            "memory_swap_max",
            "memory",
            &v2,
            why_not_v1,
        )?;
    }
    if let Some(n) = limits.max_processes {
        cap(
            cg,
            &mut applied,
            "max_processes",
            "pids",
            &[("pids.max", n.to_string())],
            |g| {
                g.write("pids.max", &n.to_string())?;
                Ok((n.to_string(), "pids.max".into()))
            },
        )?;
    }
    if let Some(cores) = limits.cpu_quota {
        let quota = ((cores * CPU_PERIOD_US as f64).round() as u64).max(1000);
        let v2 = [("cpu.max", format!("{quota} {CPU_PERIOD_US}"))];
        cap(cg, &mut applied, "cpu_quota", "cpu", &v2, |g| {
            g.write("cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            g.write("cpu.cfs_quota_us", &quota.to_string())?;
            Ok((
                format!("{quota}us per {CPU_PERIOD_US}us"),
                "cpu.cfs_quota_us / cpu.cfs_period_us".into(),
            ))
        })?;
    }
    if let Some(list) = &limits.cpus {
        let v2 = [("cpuset.cpus", list.clone())];
        cap(cg, &mut applied, "cpus", "cpuset", &v2, |g| {
            // A v1 cpuset takes no task until it has memory nodes too: the
            // owner's own.
            let mems = g
                .read_parent("cpuset.mems")
                .ok_or_else(|| "cannot read the owner's cpuset.mems".to_string())?;
            g.write("cpuset.mems", mems.trim())?;
            g.write("cpuset.cpus", list)?;
            Ok((list.clone(), "cpuset.cpus".into()))
        })?;
    }
    Ok(applied)
}

/// A group's v1 directories are named after its v2 directory.
#[cfg(target_os = "linux")]
fn v1_dir_name(cg: &Cgroup) -> String {
    cg.path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every v1 directory [`apply`] could make for `limits` on `cg` (whether
/// or not v2 takes the caps), so that the owner-death guard can learn of
/// them before they exist.
#[cfg(target_os = "linux")]
fn v1_candidates(cg: &Cgroup, limits: &Limits) -> Vec<std::path::PathBuf> {
    let wanted = [
        ("memory", limits.memory_max.is_some()),
        ("pids", limits.max_processes.is_some()),
        ("cpu", limits.cpu_quota.is_some()),
        ("cpuset", limits.cpus.is_some()),
    ];
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    // No cap asked for (a plain run): no name to build.
    if !wanted.iter().any(|(_, on)| *on) {
        return out;
    }
    let name = v1_dir_name(cg);
    for (controller, _) in wanted.iter().filter(|(_, on)| *on) {
        if let Some(h) = super::linux::v1::hierarchies().get(*controller) {
            let path = h.owner_dir.join(&name);
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Registers `cg` with the owner-death guard together with every v1
/// directory [`apply`] could make for `limits`, before any of them exists
/// (the guard skips those never made), and puts that registration in
/// `kept`, whose earlier one is released only once the new one is in.
/// False, `kept` untouched, when no v1 directory is possible or there is
/// no guard or it refused.
#[cfg(target_os = "linux")]
pub(crate) fn guard_v1_first(
    cg: &Cgroup,
    limits: &Limits,
    kept: &mut Option<super::guard::Ticket>,
) -> bool {
    let v1 = v1_candidates(cg, limits);
    let (false, Ok(g)) = (v1.is_empty(), super::guard::get()) else {
        return false;
    };
    let Ok(ticket) = g.register_cgroup(cg.path(), cg.has_kill(), &v1, Some(cg.ino())) else {
        return false;
    };
    if let Some(earlier) = kept.replace(ticket) {
        g.unregister(earlier);
    }
    true
}

/// Applies one cap: v2 when the controller can be enabled, else v1.
#[cfg(target_os = "linux")]
fn cap(
    cg: &Cgroup,
    applied: &mut Applied,
    name: &'static str,
    controller: &'static str,
    v2_writes: &[(&str, String)],
    v1_write: impl FnOnce(&V1Cgroup) -> Result<(String, String), String>,
) -> Result<(), LimitError> {
    let v2_why = match try_v2(cg, applied, name, controller, v2_writes)? {
        None => return Ok(()),
        Some(why) => why,
    };
    if applied.v1(controller).is_none() {
        let group = V1Cgroup::create(controller, &v1_dir_name(cg)).map_err(|v1_why| {
            LimitError::new(
                name,
                format!("cgroup v2 can't ({v2_why}) and cgroup v1 can't ({v1_why})"),
            )
        })?;
        applied.v1.push((controller, group));
    }
    let group = applied.v1(controller).expect("just added");
    let (value, files) = v1_write(group).map_err(|e| LimitError::new(name, e))?;
    applied.info.push(LimitInfo {
        cap: name,
        value,
        enforced_by: format!("cgroup v1 {files} in {}", group.path().display()),
    });
    Ok(())
}

#[cfg(target_os = "linux")]
/// Applies a cap that only cgroup v2 has (v1 has no file with the same
/// meaning: `why_not_v1`).
fn cap_v2_only(
    cg: &Cgroup,
    applied: &mut Applied,
    name: &'static str,
    controller: &'static str,
    v2_writes: &[(&str, String)],
    why_not_v1: &str,
) -> Result<(), LimitError> {
    match try_v2(cg, applied, name, controller, v2_writes)? {
        None => Ok(()),
        Some(v2_why) => Err(LimitError::new(
            name,
            format!("cgroup v2 can't ({v2_why}) and {why_not_v1}"),
        )),
    }
}

#[cfg(target_os = "linux")]
/// Writes a cap's v2 files when the controller can be enabled: `None`
/// when done, `Some(why)` when v2 can't have it here.
fn try_v2(
    cg: &Cgroup,
    applied: &mut Applied,
    name: &'static str,
    controller: &'static str,
    v2_writes: &[(&str, String)],
) -> Result<Option<String>, LimitError> {
    if let Err(why) = enable_v2(cg, controller) {
        return Ok(Some(why));
    }
    for (file, value) in v2_writes {
        cg.write_attr(file, value)
            .map_err(|e| LimitError::new(name, format!("cannot write {value} to {file}: {e}")))?;
    }
    let files: Vec<&str> = v2_writes.iter().map(|(f, _)| *f).collect();
    applied.info.push(LimitInfo {
        cap: name,
        value: v2_writes[0].1.clone(),
        enforced_by: format!("cgroup v2 {}", files.join(" and ")),
    });
    Ok(None)
}

#[cfg(target_os = "linux")]
fn v2_file_exists(cg: &Cgroup, file: &str) -> bool {
    cg.read_attr(file).is_some()
}

#[cfg(target_os = "linux")]
/// Makes `controller` available in the group's cgroup, or says why not.
fn enable_v2(cg: &Cgroup, controller: &str) -> Result<(), String> {
    let parent = cg
        .path()
        .parent()
        .ok_or_else(|| "the group's cgroup has no parent".to_string())?;
    let has = |file: &str| {
        std::fs::read_to_string(parent.join(file))
            .map(|t| t.split_whitespace().any(|c| c == controller))
            .unwrap_or(false)
    };
    if !has("cgroup.controllers") {
        return Err(format!(
            "the {controller} controller is not available in {} (it may be on a v1 hierarchy)",
            parent.display()
        ));
    }
    if !has("cgroup.subtree_control") {
        std::fs::write(
            parent.join("cgroup.subtree_control"),
            format!("+{controller}"),
        )
        .map_err(|e| {
            format!(
                "cannot enable the {controller} controller in {}: {e}",
                parent.display()
            )
        })?;
    }
    Ok(())
}

/// Whether this host could enforce one kind of cap, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapSupport {
    /// `memory_max`, `memory_high`, `memory_swap_max`, `max_processes`,
    /// `cpu_quota` or `cpus`.
    pub cap: &'static str,
    /// What would enforce it (`None`: nothing here can).
    pub enforced_by: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
}

/// Says, without creating anything, which caps a new group could carry
/// here: none, off Linux.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn cap_support(_v2_parent: Option<&std::path::Path>) -> Vec<CapSupport> {
    let caps = [
        "memory_max",
        "memory_high",
        "memory_swap_max",
        "max_processes",
        "cpu_quota",
        "cpus",
    ];
    caps.iter()
        .map(|&cap| CapSupport {
            cap,
            enforced_by: None,
            reason: "caps need a cgroup, and cgroups exist on Linux only".into(),
        })
        .collect()
}

#[cfg(target_os = "linux")]
/// Says, without creating anything, which caps a new cgroup group could
/// carry here.
pub(crate) fn cap_support(v2_parent: Option<&std::path::Path>) -> Vec<CapSupport> {
    // (cap, controller, v2 file, whether v1 has the same meaning)
    let caps = [
        ("memory_max", "memory", "memory.max", true),
        ("memory_high", "memory", "memory.high", false),
        ("memory_swap_max", "memory", "memory.swap.max", false),
        ("max_processes", "pids", "pids.max", true),
        ("cpu_quota", "cpu", "cpu.max", true),
        ("cpus", "cpuset", "cpuset.cpus", true),
    ];
    caps.iter()
        .map(|&(cap, controller, v2_file, v1_same)| {
            let in_v2 = v2_parent.is_some_and(|p| {
                std::fs::read_to_string(p.join("cgroup.controllers"))
                    .map(|t| t.split_whitespace().any(|c| c == controller))
                    .unwrap_or(false)
            });
            if in_v2 {
                return CapSupport {
                    cap,
                    enforced_by: Some(format!("cgroup v2 {v2_file}")),
                    reason: format!("the {controller} controller is available in this process's cgroup"),
                };
            }
            if !v1_same {
                return CapSupport {
                    cap,
                    enforced_by: None,
                    reason: format!(
                        "no {controller} controller in cgroup v2, and cgroup v1 has nothing with the meaning of {v2_file}"
                    ),
                };
            }
            match super::linux::v1::hierarchies().get(controller) {
                Some(h) if super::linux::host::dir_writable(&h.owner_dir).is_ok() => CapSupport {
                    cap,
                    enforced_by: Some(format!("cgroup v1 {controller} controller")),
                    reason: format!(
                        "cgroup v2 has no {controller} controller here; the v1 hierarchy at {} is writable",
                        h.owner_dir.display()
                    ),
                },
                _ => CapSupport {
                    cap,
                    enforced_by: None,
                    reason: format!(
                        "no {controller} controller in cgroup v2 and no writable cgroup v1 {controller} hierarchy"
                    ),
                },
            }
        })
        .collect()
}
