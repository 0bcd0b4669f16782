//! Creating a group's container: the mechanism asked for (or the fallback
//! `auto` takes), its caps, and its standing with the owner-death guard.

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, RwLock};

use super::container::{Container, CreateError, GuardLink, Kind};
use super::guard;
use super::host::MechanismChoice;
#[cfg(target_os = "linux")]
use super::limits;
use super::limits::{Applied, LimitError, Limits};
#[cfg(target_os = "linux")]
use super::linux::cgroup::Cgroup;
#[cfg(target_os = "linux")]
use super::linux::host;

impl Container {
    /// Creates a container as `choice` asks, with `limits` applied to it.
    /// `stats`: its group reports its resource use (see `Cgroup::create`).
    pub(crate) fn create(
        choice: MechanismChoice,
        limits: &Limits,
        want_guard: bool,
        name: Option<&str>,
        stats: bool,
    ) -> Result<Container, CreateError> {
        limits.validate().map_err(CreateError::Limit)?;
        #[cfg(not(target_os = "linux"))]
        let _ = (name, stats);
        #[cfg(not(target_os = "linux"))]
        let (kind, fallback, kept): (Kind, Option<String>, Option<guard::Ticket>) = match choice {
            MechanismChoice::Cgroup => {
                return Err(CreateError::Mechanism(
                    "cgroup v2 exists on Linux only".into(),
                ))
            }
            _ => (Self::pgroup(true), None, None),
        };
        #[cfg(target_os = "linux")]
        let cgroup = || -> Result<(Cgroup, Option<guard::Ticket>), String> {
            let h = host::cgroup_host().as_ref().map_err(Clone::clone)?;
            guard::sweep_stale_once(&h.parent_dir);
            // The guard (started here for the first group) learns of a new
            // directory before it is made: see `Cgroup::create`.
            let g = if want_guard { guard::get().ok() } else { None };
            Cgroup::create(&h.parent_dir, h.has_kill, name, g, stats)
                .map_err(|e| format!("cannot create a cgroup in {}: {e}", h.parent_dir.display()))
        };
        // A spare or new directory comes with its guard registration
        // (`kept`).
        #[cfg(target_os = "linux")]
        let (kind, fallback, kept) = match choice {
            MechanismChoice::ProcessGroup => (Self::pgroup(false), None, None),
            MechanismChoice::Portable => (Self::pgroup(true), None, None),
            MechanismChoice::Cgroup => {
                let (cg, kept) = cgroup().map_err(CreateError::Mechanism)?;
                (Kind::Cgroup(cg), None, kept)
            }
            MechanismChoice::Auto => match cgroup() {
                Ok((cg, kept)) => (Kind::Cgroup(cg), None, kept),
                Err(why) => (Self::pgroup(false), Some(why), None),
            },
        };
        #[allow(unused_mut)]
        let mut kept = kept;
        // Whatever happens below, a registration not taken over is dropped.
        // (The guard is asked for only then: asking starts it, and a group
        // with no guard, or the portable backend's, has no use for this one.)
        let release_kept = |kept: Option<guard::Ticket>| {
            if let Some(t) = kept {
                if let Ok(g) = guard::get() {
                    g.unregister(t);
                }
            }
        };
        // A capped group's v1 directories are registered before they exist.
        #[cfg(target_os = "linux")]
        let v1_in = match (&kind, want_guard) {
            (Kind::Cgroup(cg), true) => limits::guard_v1_first(cg, limits, &mut kept),
            _ => false,
        };
        let applied = match (&kind, limits.is_empty()) {
            (_, true) => Applied::default(),
            #[cfg(target_os = "linux")]
            (Kind::Cgroup(cg), false) => match limits::apply(cg, limits) {
                Ok(applied) => applied,
                Err(e) => {
                    release_kept(kept);
                    return Err(CreateError::Limit(e));
                }
            },
            (Kind::Pgroup { .. }, false) => {
                let cap = limits.first_cap();
                let why = match &fallback {
                    Some(why) => format!("cgroup v2 is unusable here ({why})"),
                    None if !cfg!(target_os = "linux") => "cgroups exist on Linux only".to_string(),
                    None => "the process-group mechanism was chosen".to_string(),
                };
                return Err(CreateError::Limit(LimitError::new(
                    cap,
                    format!("caps need a cgroup, and {why}: a process group can't enforce them"),
                )));
            }
        };
        let link = if !want_guard {
            GuardLink::Off
        } else {
            match (guard::get_for(kind.is_portable()), &kind) {
                (Err(why), _) => GuardLink::Unavailable(why),
                (Ok(_), Kind::Pgroup { .. }) => GuardLink::Pending,
                // The registration made with the directory (or a spare's,
                // or the one with its v1 directories) covers it; else v1 cap
                // directories need one, made before the old one's release.
                #[cfg(target_os = "linux")]
                (Ok(g), Kind::Cgroup(_)) if kept.is_some() && (v1_in || applied.v1.is_empty()) => {
                    let ticket = kept.take().expect("checked");
                    g.set_spare(&ticket, false);
                    GuardLink::On(ticket)
                }
                #[cfg(target_os = "linux")]
                (Ok(g), Kind::Cgroup(cg)) => {
                    let v1: Vec<std::path::PathBuf> = applied
                        .v1
                        .iter()
                        .map(|(_, g)| g.path().to_path_buf())
                        .collect();
                    match g.register_cgroup(cg.path(), cg.has_kill(), &v1, Some(cg.ino())) {
                        Ok(t) => GuardLink::On(t),
                        Err(why) => {
                            tracing::warn!(target: "pkit", reason = %why, "group not covered by the owner-death guard");
                            GuardLink::Unavailable(why)
                        }
                    }
                }
            }
        };
        release_kept(kept);
        Ok(Container {
            kind,
            fallback,
            torn_down: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            suspended: AtomicBool::new(false),
            limits: applied,
            guard: Mutex::new(link),
            #[cfg(target_os = "linux")]
            leaves: Default::default(),
            #[cfg(target_os = "linux")]
            started: Default::default(),
            lifecycle: RwLock::new(()),
            kills: Default::default(),
            freezing: Mutex::new(()),
            closing: std::panic::AssertUnwindSafe(tokio::sync::Mutex::new(())),
            owner: super::Creator::here(),
        })
    }
}
