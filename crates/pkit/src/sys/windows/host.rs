//! What containment a Windows host offers.

use super::super::{CapSupport, GuardStatus, HostContainment, Mechanism, MechanismChoice};

/// Says, without spawning anything, what a new [`Group`](crate::Group)
/// would get on this host and why. On Windows: a Job Object.
///
/// ```
/// let host = pkit::host_containment();
/// println!("{:?}: {}", host.mechanism, host.reason);
/// ```
pub fn host_containment() -> HostContainment {
    let choice = MechanismChoice::from_env();
    let (mechanism, reason) = match &choice {
        Err(bad) => (
            None,
            format!("{}: creating a group fails", MechanismChoice::env_error(bad)),
        ),
        Ok(MechanismChoice::Auto) => (
            Some(Mechanism::JobObject),
            "a Job Object with KILL_ON_JOB_CLOSE; children are created suspended, assigned, then resumed"
                .to_string(),
        ),
        Ok(other) => (
            None,
            format!("PKIT_MECHANISM={other} is not available on Windows: creating a group fails"),
        ),
    };
    let cap = |cap: &'static str, by: Option<&str>, reason: &str| CapSupport {
        cap,
        enforced_by: by.map(str::to_string),
        reason: reason.to_string(),
    };
    HostContainment {
        mechanism,
        choice: choice.unwrap_or_default(),
        reason,
        kernel: "windows".into(),
        cgroup_mount: None,
        owner_cgroup: None,
        group_parent: None,
        cgroup_writable: false,
        cgroup_kill: false,
        clone3: false,
        clone3_error: None,
        caps: vec![
            if super::under_wine() {
                cap(
                    "memory_max",
                    None,
                    "Wine accepts a job's memory limit but does not enforce it",
                )
            } else {
                cap(
                    "memory_max",
                    Some("job memory limit"),
                    "the job caps its processes' committed memory together",
                )
            },
            cap("memory_high", None, "a Job Object has no soft memory limit"),
            cap("memory_swap_max", None, "a Job Object has no swap limit"),
            if super::under_wine() {
                cap(
                    "max_processes",
                    None,
                    "Wine accepts a job's active process limit but does not enforce it",
                )
            } else {
                cap(
                    "max_processes",
                    Some("job active process limit"),
                    "the job caps its live processes",
                )
            },
            if super::under_wine() {
                cap(
                    "cpu_quota",
                    None,
                    "Wine does not implement a job's CPU rate cap",
                )
            } else {
                cap(
                    "cpu_quota",
                    Some("job CPU rate hard cap"),
                    "the job caps its share of the machine's CPU",
                )
            },
            if super::under_wine() {
                cap(
                    "cpus",
                    None,
                    "Wine accepts a job's CPU affinity but does not keep it",
                )
            } else {
                cap(
                    "cpus",
                    Some("job CPU affinity"),
                    "the job's processes run only on the listed CPUs (the first 64 at most)",
                )
            },
        ],
        guard: GuardStatus {
            running: false,
            error: Some("not needed: the kernel kills a job whose last handle closes".into()),
            ..GuardStatus::default()
        },
    }
}
