//! What containment this host offers, reported without spawning anything.

use std::fmt;
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicI32, Ordering};

#[cfg(target_os = "linux")]
use super::linux::{host, spawn};
use super::Mechanism;

/// Which mechanism a new group should use.
///
/// The default is [`MechanismChoice::Auto`], overridable for a whole
/// process with the environment variable
/// `PKIT_MECHANISM=auto|cgroup|pgroup|portable` and per group with
/// [`GroupBuilder::mechanism`](crate::GroupBuilder::mechanism).
///
/// On macOS and the BSDs every choice but `Cgroup` gives the portable
/// process-group backend, and `Cgroup` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MechanismChoice {
    /// The strongest mechanism that works here: cgroup v2, else a process
    /// group (the group reports which it got).
    #[default]
    Auto,
    /// cgroup v2 or an error: never a fallback.
    Cgroup,
    /// A POSIX process group, even where cgroup v2 is available.
    ProcessGroup,
    /// A POSIX process group run by the portable Unix backend, the one
    /// macOS and the BSDs use: `posix_spawn` instead of pkit's Linux
    /// spawner, children held by pid and waited for through SIGCHLD
    /// instead of pidfds. The group reports
    /// [`Mechanism::ProcessGroup`]. On Linux it exists so that this code
    /// runs in tests. The spawn options that need code in the child before
    /// `exec` (limits, credentials, the umask, `keep_fds`, …) are applied by
    /// a trampoline (this program's executable, run before the program),
    /// and are [`Error::Unsupported`](crate::Error::Unsupported) where none
    /// can be used; [`pre_exec`](crate::Command::pre_exec) hooks, closures
    /// that can't cross that `exec`, are always refused.
    Portable,
}

impl MechanismChoice {
    /// The environment variable that sets the process-wide default.
    pub const ENV_VAR: &'static str = "PKIT_MECHANISM";

    /// Parses `auto`, `cgroup` (or `cgroup-v2`, `cgroupv2`), `pgroup`
    /// (or `process-group`, `pg`) and `portable`, case-insensitively.
    pub fn parse(s: &str) -> Option<MechanismChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(MechanismChoice::Auto),
            "cgroup" | "cgroup-v2" | "cgroupv2" | "cgroup2" => Some(MechanismChoice::Cgroup),
            "pgroup" | "process-group" | "processgroup" | "pg" => {
                Some(MechanismChoice::ProcessGroup)
            }
            "portable" => Some(MechanismChoice::Portable),
            _ => None,
        }
    }

    /// The choice made by `PKIT_MECHANISM`, `Auto` when it is unset, or the
    /// unparseable value.
    ///
    /// # Errors
    ///
    /// The variable's value (lossily decoded) when it is not one of the
    /// spellings [`as_str`](Self::as_str) gives.
    pub fn from_env() -> Result<MechanismChoice, String> {
        match std::env::var_os(Self::ENV_VAR) {
            None => Ok(MechanismChoice::Auto),
            Some(v) => {
                let s = v.to_string_lossy();
                MechanismChoice::parse(&s).ok_or_else(|| s.into_owned())
            }
        }
    }

    /// What is wrong with an unparseable `PKIT_MECHANISM` (the value
    /// [`from_env`](Self::from_env) returned), naming every choice.
    pub(crate) fn env_error(bad: &str) -> String {
        format!(
            "{}={bad:?} is not one of auto, cgroup, pgroup, portable (unset it for auto)",
            Self::ENV_VAR
        )
    }

    /// The mechanism this choice insists on (`None` for `Auto`, which
    /// takes whatever works): what a refused choice asked for.
    pub(crate) fn requested(self) -> Option<Mechanism> {
        match self {
            MechanismChoice::Auto => None,
            MechanismChoice::Cgroup => Some(Mechanism::CgroupV2),
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
                Some(Mechanism::ProcessGroup)
            }
        }
    }

    /// The spelling `PKIT_MECHANISM` accepts: `auto`, `cgroup`, `pgroup`,
    /// `portable`.
    pub fn as_str(self) -> &'static str {
        match self {
            MechanismChoice::Auto => "auto",
            MechanismChoice::Cgroup => "cgroup",
            MechanismChoice::ProcessGroup => "pgroup",
            MechanismChoice::Portable => "portable",
        }
    }
}

impl fmt::Display for MechanismChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new group would get on this host, and why; see
/// [`host_containment`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostContainment {
    /// The mechanism a new group gets under the current `PKIT_MECHANISM`
    /// (`None` when the forced mechanism is impossible here).
    pub mechanism: Option<Mechanism>,
    /// The choice in force (`PKIT_MECHANISM`, default `auto`).
    pub choice: MechanismChoice,
    /// One sentence saying why `mechanism` is what it is.
    pub reason: String,
    /// The kernel release.
    pub kernel: String,
    /// Where cgroup v2 is mounted, if it is.
    pub cgroup_mount: Option<PathBuf>,
    /// This process's own cgroup (relative to the v2 hierarchy's root).
    pub owner_cgroup: Option<PathBuf>,
    /// The directory new groups' cgroups are created in.
    pub group_parent: Option<PathBuf>,
    /// Whether this process may create cgroups there.
    pub cgroup_writable: bool,
    /// Whether teardown can use `cgroup.kill` (kernel >= 5.14); otherwise
    /// it freezes, kills each member and thaws.
    pub cgroup_kill: bool,
    /// Whether `clone3` is allowed (so children are placed in their cgroup
    /// at birth); otherwise they join it themselves just before `exec`.
    pub clone3: bool,
    /// Why `clone3` is refused, when it is.
    pub clone3_error: Option<String>,
    /// Which resource caps a cgroup group could carry here, and how. Caps
    /// need a cgroup: under the process-group mechanism none can be had,
    /// and where no cgroup can be made (see `reason`) none is listed as
    /// enforced, whatever cgroup v1 hierarchies are writable.
    pub caps: Vec<super::limits::CapSupport>,
    /// This process's owner-death guard: whether it runs, its pid, and the
    /// groups it covers. It starts with the process's first group.
    pub guard: super::GuardStatus,
}

#[cfg(unix)]
/// Says, without spawning anything, what a new [`Group`](crate::Group)
/// would get on this host and why: the cgroup v2 mount and this process's
/// cgroup, whether a cgroup can be created there, whether `cgroup.kill` and
/// `clone3` are available, and the effect of `PKIT_MECHANISM`.
///
/// ```
/// let host = pkit::host_containment();
/// println!("{:?}: {}", host.mechanism, host.reason);
/// ```
pub fn host_containment() -> HostContainment {
    let choice = MechanismChoice::from_env();
    #[cfg(not(target_os = "linux"))]
    return portable_host(choice);
    #[cfg(target_os = "linux")]
    linux_host(choice)
}

/// What the portable backend can't do where pkit has no spawn trampoline
/// at all (see `unix/spawn.rs`), said in the host report.
#[cfg(any(target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
const NO_TRAMPOLINE_HERE: &str = "; no spawn trampoline on this system, so credentials, resource \
     limits, the umask, nice, keep_fds, pty sessions and a working directory are refused \
     (Unsupported), and the guard compares no group leader's start time";
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))
))]
const NO_TRAMPOLINE_HERE: &str = "";

/// What a group gets where only the portable backend exists.
#[cfg(all(unix, not(target_os = "linux")))]
fn portable_host(choice: Result<MechanismChoice, String>) -> HostContainment {
    let (mechanism, reason) = match &choice {
        Err(bad) => (
            None,
            format!(
                "{}: creating a group fails",
                MechanismChoice::env_error(bad)
            ),
        ),
        Ok(MechanismChoice::Cgroup) => (
            None,
            "cgroup v2 is forced (PKIT_MECHANISM=cgroup) but exists on Linux only: creating a group fails"
                .to_string(),
        ),
        Ok(_) => (
            Some(Mechanism::ProcessGroup),
            format!(
                "process groups (the portable backend: posix_spawn, kqueue and SIGCHLD waits); \
                 cgroups are Linux-only{}",
                NO_TRAMPOLINE_HERE
            ),
        ),
    };
    HostContainment {
        mechanism,
        choice: choice.unwrap_or_default(),
        reason,
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        cgroup_mount: None,
        owner_cgroup: None,
        group_parent: None,
        cgroup_writable: false,
        cgroup_kill: false,
        clone3: false,
        clone3_error: Some("clone3 is Linux-only".into()),
        caps: super::limits::cap_support(None),
        guard: super::guard::status(true),
    }
}

#[cfg(target_os = "linux")]
fn linux_host(choice: Result<MechanismChoice, String>) -> HostContainment {
    let kernel = host::kernel_release();
    let clone3 = clone3_status();
    let mut report = HostContainment {
        mechanism: None,
        choice: choice.clone().unwrap_or_default(),
        reason: String::new(),
        kernel,
        cgroup_mount: None,
        owner_cgroup: None,
        group_parent: None,
        cgroup_writable: false,
        cgroup_kill: false,
        clone3: clone3.is_ok(),
        clone3_error: clone3.err().map(clone3_refusal),
        caps: Vec::new(),
        // Under a forced portable backend, groups get the portable guard.
        guard: super::guard::status(choice == Ok(MechanismChoice::Portable)),
    };
    let cgroup = match host::cgroup_host() {
        Ok(h) => {
            report.cgroup_mount = Some(h.mount.clone());
            report.owner_cgroup = Some(h.owner.clone());
            report.group_parent = Some(h.parent_dir.clone());
            report.cgroup_kill = h.has_kill;
            match host::dir_writable(&h.parent_dir) {
                Ok(()) => {
                    report.cgroup_writable = true;
                    Ok(())
                }
                Err(e) => Err(format!(
                    "cannot create cgroups in {}: {e}",
                    h.parent_dir.display()
                )),
            }
        }
        Err(why) => Err(why.clone()),
    };
    report.caps =
        super::limits::cap_support(report.group_parent.as_deref().filter(|_| cgroup.is_ok()));
    // No cgroup group can be made here: a writable cgroup v1 hierarchy
    // enforces nothing without one (a capped group fails to build).
    if let Err(why) = &cgroup {
        for cap in report.caps.iter_mut().filter(|c| c.enforced_by.is_some()) {
            cap.enforced_by = None;
            cap.reason = format!("caps need a cgroup, and none can be made here: {why}");
        }
    }
    match (choice, cgroup) {
        (Err(bad), _) => {
            report.reason = format!(
                "{}: creating a group fails",
                MechanismChoice::env_error(&bad)
            );
        }
        (Ok(MechanismChoice::ProcessGroup), _) => {
            report.mechanism = Some(Mechanism::ProcessGroup);
            report.reason = "the process-group mechanism is forced (PKIT_MECHANISM=pgroup)".into();
        }
        (Ok(MechanismChoice::Portable), _) => {
            report.mechanism = Some(Mechanism::ProcessGroup);
            report.reason = "the portable process-group backend (posix_spawn, SIGCHLD waits; \
                             what macOS and the BSDs run) is forced (PKIT_MECHANISM=portable)"
                .into();
        }
        (Ok(choice), Ok(())) => {
            report.mechanism = Some(Mechanism::CgroupV2);
            let placement = if report.clone3 {
                "children are placed in it at birth with a vfork-style clone3(CLONE_INTO_CGROUP)"
                    .to_string()
            } else {
                format!(
                    "children join it just before exec because clone3 is refused ({})",
                    report.clone3_error.as_deref().unwrap_or("unknown")
                )
            };
            let forced = if choice == MechanismChoice::Cgroup {
                " (forced)"
            } else {
                ""
            };
            report.reason = format!("cgroup v2 is mounted and writable{forced}; {placement}");
        }
        (Ok(MechanismChoice::Cgroup), Err(why)) => {
            report.reason = format!(
                "cgroup v2 is forced (PKIT_MECHANISM=cgroup) but unusable: {why}; creating a group fails"
            );
        }
        (Ok(_), Err(why)) => {
            report.mechanism = Some(Mechanism::ProcessGroup);
            report.reason = format!("falling back to a process group: {why}");
        }
    }
    report
}

#[cfg(target_os = "linux")]
/// 0 while clone3 is usable, else the errno that refused it.
static CLONE3_REFUSED: AtomicI32 = AtomicI32::new(0);

#[cfg(target_os = "linux")]
/// The "errno" of a clone3 turned off by [`CLONE3_ENV_VAR`].
pub(crate) const CLONE3_DISABLED: i32 = i32::MAX;

#[cfg(target_os = "linux")]
/// After the kernel killed a child placed with clone3 at birth (see
/// `spawn::spawn_into_cgroup`): whether to give clone3 up for every later
/// start of this process. Yes when the target was made for this start (a
/// new cgroup or leaf, which nobody can have killed: the owner's own
/// cgroup is the one killed once, and every new cgroup would kill the
/// same way), or on the second such kill; a spare (which may have been
/// killed from outside while an earlier group used it) is discarded
/// instead, the first time.
pub(crate) fn birth_kill_is_owners(spare: bool) -> bool {
    static SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    SEEN.swap(true, Ordering::AcqRel) || !spare
}

#[cfg(target_os = "linux")]
/// `PKIT_CLONE3=off` makes the cgroup mechanism use its second rung (a
/// vfork-style clone that joins the cgroup itself before exec), as on a
/// host whose seccomp filter refuses clone3; for tests and for comparing
/// the two.
pub(crate) const CLONE3_ENV_VAR: &str = "PKIT_CLONE3";

#[cfg(target_os = "linux")]
/// Whether clone3 may be used: probed once, then updated if a real spawn is
/// refused.
pub(crate) fn clone3_status() -> Result<(), i32> {
    // Not a `OnceLock`: see `CopyOnce`.
    static PROBED: crate::sys::CopyOnce<()> = crate::sys::CopyOnce::new();
    PROBED.get_or_init(|| {
        let off = match std::env::var_os(CLONE3_ENV_VAR) {
            None => false,
            Some(v) if v == "off" || v == "0" => true,
            Some(v) if v == "on" || v == "1" || v.is_empty() => false,
            Some(_) => {
                tracing::warn!(target: "pkit", "{CLONE3_ENV_VAR} is neither on nor off; ignored");
                false
            }
        };
        if off {
            CLONE3_REFUSED.store(CLONE3_DISABLED, Ordering::Relaxed);
        } else if let Err(e) = spawn::probe_clone3() {
            CLONE3_REFUSED.store(e.max(1), Ordering::Relaxed);
        }
    });
    match CLONE3_REFUSED.load(Ordering::Relaxed) {
        0 => Ok(()),
        e => Err(e),
    }
}

#[cfg(target_os = "linux")]
/// Records that clone3 was refused with `errno`, so later spawns skip it.
pub(crate) fn mark_clone3_refused(errno: i32) {
    CLONE3_REFUSED.store(errno.max(1), Ordering::Relaxed);
}

#[cfg(target_os = "linux")]
/// Why clone3 is not used, for reports: `ENOSYS (function not
/// implemented)`-style text for the errno that refused it, or the
/// environment variable that turned it off.
pub(crate) fn clone3_refusal(errno: i32) -> String {
    if errno == CLONE3_DISABLED {
        return format!("turned off by {CLONE3_ENV_VAR}=off");
    }
    if errno == spawn::CLONE3_BIRTH_KILLED {
        return "the kernel killed a child placed by clone3(CLONE_INTO_CGROUP) at birth \
                (a cgroup here was once written cgroup.kill)"
            .to_string();
    }
    let name = match errno {
        libc::ENOSYS => "ENOSYS",
        libc::EPERM => "EPERM",
        libc::E2BIG => "E2BIG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        _ => "errno",
    };
    format!("{name}: {}", std::io::Error::from_raw_os_error(errno))
}
