//! A group's Job Object and what a group does with it: placing children,
//! killing, closing, stats, control.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::super::host::MechanismChoice;
use super::super::limits::{LimitError, Limits};
use super::super::stats::{Stats, StatsSources};
use super::super::{
    ControlError, LimitInfo, Mechanism, Placement, ProcessInfo, SpawnError, SpawnSpec,
};
use super::child::ChildHandle;
use super::job::{Job, JobCaps};
use super::suspend::{self, Step};
use super::tree::ProcTree;
use super::{ctrl, spawn, unsupported};
use crate::sys::signal::nums::{SIGCONT, SIGKILL, SIGSTOP};

/// A group's OS container: one Job Object.
#[derive(Debug)]
pub(crate) struct Container {
    job: Job,
    /// Set when a close or teardown begins: no new child is placed.
    torn_down: AtomicBool,
    /// Set once a teardown has completed.
    finished: AtomicBool,
    /// While the group is suspended (set under the lifecycle lock; taken
    /// under it by `resume`, without it after an end's break: see
    /// `thaw_suspended`): the processes suspended, which a resumption
    /// resumes (and no other). Starts are refused meanwhile.
    suspended: Mutex<Option<Vec<OwnedHandle>>>,
    /// What `Signal::Stop` to the group holds suspended, until
    /// `Signal::Cont` resumes exactly these: a hold of its own, apart from
    /// [`suspended`](Self::suspended) (each is one suspension of a process,
    /// undone by its own counterpart only, as SIGSTOP and a cgroup's
    /// freeze are on Linux). Starts go on meanwhile.
    stopped: Mutex<Vec<OwnedHandle>>,
    /// Shared by a start through its placement, exclusive while `close`
    /// marks the group closed (see the Unix backend).
    lifecycle: RwLock<()>,
    limits: Vec<LimitInfo>,
    /// The children started in the job and not seen to exit, each the
    /// leader of its own console process group: where a graceful stop
    /// sends its CTRL_BREAKs. Held, not borrowed: a started process's
    /// handle may be dropped while it runs, and its id must stay its own.
    leaders: Mutex<Vec<Arc<ChildHandle>>>,
}

/// Why a container could not be created.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The forced mechanism is impossible here.
    Mechanism(String),
    /// A cap can't be enforced (or is invalid).
    Limit(LimitError),
}

/// How long `close` waits for a terminated job to be empty.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How often the job's process count is read while waiting for it.
const POLL: Duration = Duration::from_millis(10);

impl Container {
    /// Creates a job as `choice` asks, with `limits` applied to it.
    pub(crate) fn create(
        choice: MechanismChoice,
        limits: &Limits,
        _want_guard: bool,
        _name: Option<&str>,
        _stats: bool,
    ) -> Result<Container, CreateError> {
        limits.validate().map_err(CreateError::Limit)?;
        if choice != MechanismChoice::Auto {
            return Err(CreateError::Mechanism(format!(
                "{choice} is not available on Windows (a Job Object is used)"
            )));
        }
        let (caps, cpu, info) = job_caps(limits).map_err(CreateError::Limit)?;
        let job = Job::create(true, caps)
            .map_err(|e| CreateError::Mechanism(format!("cannot create a Job Object: {e}")))?;
        if let Some(mask) = cpu.affinity {
            let refused = |why: String| CreateError::Limit(LimitError::new("cpus", why));
            job.set_affinity(mask)
                .map_err(|e| refused(format!("this Windows refuses a job's CPU affinity ({e})")))?;
            let kept = job
                .affinity()
                .map_err(|e| refused(format!("cannot read the job's CPU affinity back ({e})")))?;
            if kept != Some(mask) {
                return Err(refused(if super::under_wine() {
                    "Wine accepts a job's CPU affinity but does not keep it".to_string()
                } else {
                    format!("this Windows did not keep the job's CPU affinity (it has {kept:x?})")
                }));
            }
        }
        let cpu_rate = cpu.rate;
        if let Some(rate) = cpu_rate {
            job.cap_cpu_rate(rate).map_err(|e| {
                let why = if super::under_wine() {
                    format!("Wine does not implement a job's CPU rate cap ({e})")
                } else {
                    format!("this Windows refuses a job's CPU rate cap ({e})")
                };
                CreateError::Limit(LimitError::new("cpu_quota", why))
            })?;
        }
        Ok(Container {
            job,
            torn_down: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            suspended: Mutex::new(None),
            stopped: Mutex::new(Vec::new()),
            lifecycle: RwLock::new(()),
            limits: info,
            leaders: Mutex::new(Vec::new()),
        })
    }

    /// Whether the owner-death guard is in force: Windows's is the job's
    /// `KILL_ON_JOB_CLOSE`, with which every job is created (a group is
    /// not made without it, nor, so, without the guard: turning the guard
    /// off can't take it away), so the kernel ends every process in the
    /// job, adopted ones too, when the owner's handle closes as it dies.
    /// Until the group is closed: as on Unix, where a close releases the
    /// guard, a closed group (its job terminated, taking no start or
    /// adoption) guards nothing.
    pub(crate) fn guarded(&self) -> bool {
        !self.finished.load(Ordering::Acquire)
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        Mechanism::JobObject
    }

    /// One line for humans.
    pub(crate) fn describe(&self) -> String {
        if self.torn_down.load(Ordering::Acquire) {
            return "Job Object; closed".to_string();
        }
        format!(
            "Job Object with KILL_ON_JOB_CLOSE; {}; teardown by TerminateJobObject; \
             the owner's death closes the job, which kills it",
            self.placement()
        )
    }

    /// Terminates the whole tree, now.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.job.terminate()
    }

    /// The same: a terminated job stays usable for new children.
    pub(crate) fn kill_keep_usable(&self) -> io::Result<()> {
        self.kill()
    }

    /// Sends `sig` to the group: SIGKILL terminates the job; SIGTERM and
    /// SIGINT are a CTRL_BREAK to each started child's console process
    /// group (`Unsupported` when none can be sent one: see `ctrl.rs`);
    /// SIGSTOP suspends each process in the job not held by an earlier
    /// stop, and SIGCONT resumes those the stops hold (see `stopped`);
    /// any other signal is refused, closed group or not (it is never one
    /// Windows can send). Once a close has begun, SIGTERM, SIGINT, SIGSTOP
    /// and SIGCONT do nothing and succeed, as on Unix (SIGKILL terminates
    /// the emptied job again, harmlessly): the close terminates the job,
    /// which takes no start or adoption from then on, so nothing is left
    /// to signal.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        if sig == SIGKILL {
            return self.kill_keep_usable();
        }
        if !(ctrl::is_break(sig) || sig == SIGSTOP || sig == SIGCONT) {
            return Err(unsupported(
                "Windows has no such signal: only Signal::Kill (TerminateJobObject), \
                 Signal::Term or Signal::Int (CTRL_BREAK to console programs), and \
                 Signal::Stop or Signal::Cont (suspending the job's processes) can be sent \
                 to a job",
            ));
        }
        if self.is_closed() {
            return Ok(());
        }
        if ctrl::is_break(sig) {
            // The handles stay held until the breaks are sent.
            let leaders = self.live_leaders();
            return ctrl::send_break(leaders.iter().map(|c| c.pid() as u32)).map(drop);
        }
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if sig == SIGSTOP {
            suspend::more(&self.job, &mut stopped)
        } else {
            suspend::resume(std::mem::take(&mut *stopped))
        }
    }

    /// [`signal`](Self::signal), for an async caller (nothing in it waits,
    /// as a Unix cgroup's freeze does).
    pub(crate) async fn signal_async(&self, sig: i32) -> io::Result<()> {
        self.signal(sig)
    }

    /// [`signal_async`](Self::signal_async), `before` run just ahead of
    /// the signal (see the Unix one).
    pub(crate) async fn signal_async_then(
        &self,
        sig: i32,
        before: impl FnOnce(),
    ) -> io::Result<()> {
        before();
        self.signal(sig)
    }

    /// The started children still running (the list forgets the others).
    fn live_leaders(&self) -> Vec<Arc<ChildHandle>> {
        let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        leaders.retain(|c| matches!(c.try_status(), Ok(None)));
        leaders.clone()
    }

    /// The live processes in the job.
    pub(crate) fn members(&self) -> io::Result<Vec<i32>> {
        Ok(self.job.pids()?.into_iter().map(|p| p as i32).collect())
    }

    /// Processes started in the job that run outside it: none, as a
    /// process can't leave its job (the Unix container's cgroup can lose a
    /// started process, which a shutdown then signals with the rest).
    pub(crate) fn started_outside(&self, _inside: &[i32]) -> Vec<i32> {
        Vec::new()
    }

    /// Waits until the processes in `pids` have left the job, or
    /// `deadline`; returns how many are still there.
    pub(crate) async fn wait_members(&self, pids: &[i32], deadline: Instant) -> io::Result<usize> {
        loop {
            let now = self.members()?;
            let left = pids.iter().filter(|p| now.contains(p)).count();
            if left == 0 || Instant::now() >= deadline {
                return Ok(left);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Terminates the tree, waits until the job is empty, and retires it.
    pub(crate) async fn close(&self) -> io::Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let _closing = self.lifecycle.write().unwrap_or_else(|e| e.into_inner());
            self.torn_down.store(true, Ordering::Release);
        }
        self.kill()?;
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.job.accounting()?.active > 0 && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        self.leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // What the stops held is ended: no continue is sent it any more.
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.finished.store(true, Ordering::Release);
        Ok(())
    }

    /// Terminates the tree now (the synchronous path, for `Drop`).
    pub(crate) fn teardown_now(&self) {
        self.torn_down.store(true, Ordering::Release);
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.kill();
    }

    /// Why a start must be refused now, if it must.
    pub(crate) fn refusal(&self) -> Option<io::Error> {
        if self.is_closed() {
            return Some(io::Error::other("the group has been closed"));
        }
        self.is_suspended().then(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "the group is suspended: resume it first",
            )
        })
    }

    /// Whether a close or teardown has begun (no start is taken any more):
    /// [`refusal`](Self::refusal)'s first case, without building its error.
    pub(crate) fn is_closed(&self) -> bool {
        self.torn_down.load(Ordering::Acquire)
    }

    pub(crate) fn placement(&self) -> Placement {
        Placement::SuspendedIntoJob
    }

    /// Starts `spec` in the job: created suspended, assigned, resumed.
    /// `own_tree`: the child also gets a nested job of its own.
    pub(crate) fn spawn(
        &self,
        spec: &SpawnSpec,
        own_tree: bool,
    ) -> Result<(Arc<ChildHandle>, Option<ProcTree>), SpawnError> {
        let _placing = self.lifecycle.read().unwrap_or_else(|e| e.into_inner());
        if let Some(refusal) = self.refusal() {
            return Err(SpawnError::Os(refusal));
        }
        let (pid, process) = spawn::create(spec, false)?;
        let child = Arc::new(ChildHandle::new(pid, process));
        let placed = self.job.assign(child.handle()).map(|()| {
            let tree = own_tree.then(|| ProcTree::new(&child));
            (child.clone(), tree)
        });
        let placed = placed.and_then(|done| spawn::resume(pid).map(|()| done));
        match placed {
            Ok(done) => {
                let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
                // Forget the ended ones now and then, so the list stays short.
                if leaders.len() >= 64 && leaders.len().is_power_of_two() {
                    leaders.retain(|c| matches!(c.try_status(), Ok(None)));
                }
                leaders.push(child.clone());
                Ok(done)
            }
            Err(e) => {
                // Never left running outside the job, nor suspended forever.
                let _ = child.signal(SIGKILL);
                Err(SpawnError::Os(e))
            }
        }
    }

    /// A snapshot of the job's accounting.
    pub(crate) fn stats(&self) -> io::Result<Stats> {
        let acc = self.job.accounting()?;
        // Wine counts a job's processes but keeps neither its CPU time nor
        // its peak memory (both read 0, however much was used): unknown,
        // not 0.
        if super::under_wine() {
            return Ok(Stats {
                active: acc.active as usize,
                cpu: None,
                peak: None,
                current: None,
                sources: StatsSources {
                    cpu: "none (Wine keeps no Job Object CPU time)",
                    memory: "none (Wine keeps no Job Object peak memory)",
                },
            });
        }
        Ok(Stats {
            active: acc.active as usize,
            cpu: Some(acc.cpu),
            peak: acc.peak_memory,
            current: None,
            sources: StatsSources {
                cpu: "Job Object accounting",
                memory: "Job Object peak committed memory",
            },
        })
    }

    /// Windows keeps no count of memory-cap kills for a job.
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        None
    }

    /// Suspends every process in the job (`suspend.rs`: each one's
    /// threads, until no process in the job is left running); a second
    /// suspension does nothing. Under the lifecycle lock: a start racing
    /// this either placed its child before (suspended with the rest) or is
    /// refused until [`resume`](Self::resume). A closed group (a close has
    /// begun: it marks the group closed under this lock, then terminates
    /// the job) is only marked suspended, as on Unix: nothing is left to
    /// suspend, and the job is not touched.
    pub(crate) async fn suspend(&self) -> io::Result<()> {
        let _state = self.lifecycle.write().unwrap_or_else(|e| e.into_inner());
        let mut suspended = self.suspended.lock().unwrap_or_else(|e| e.into_inner());
        if suspended.is_none() {
            *suspended = Some(if self.is_closed() {
                Vec::new()
            } else {
                suspend::job(&self.job)?
            });
        }
        Ok(())
    }

    /// Resumes what [`suspend`](Self::suspend) suspended, and only that
    /// (once each: a process suspended by other means too stays suspended,
    /// and one that joined the job meanwhile, created suspended by its
    /// parent, is not woken); nothing when the group is not suspended. The
    /// group is not suspended afterwards, even if one resumption failed.
    /// A closed group's mark is lifted and nothing resumed, as on Unix:
    /// the close terminates the processes, suspended or not.
    pub(crate) async fn resume(&self) -> io::Result<()> {
        let _state = self.lifecycle.write().unwrap_or_else(|e| e.into_inner());
        self.thaw_suspended()
    }

    /// Lets a group the caller suspended run again after a break went to
    /// it (or to a started process's subtree in it), as
    /// [`resume`](Self::resume) does: its programs then handle the break
    /// within their grace, rather than sit suspended through it and be
    /// terminated at its end. Nothing for a group not suspended; a closed
    /// group's mark is lifted and nothing resumed.
    ///
    /// It takes only `suspended`'s lock, held while the processes are
    /// resumed (a shutdown and a started process's end call it, as the
    /// Unix backend's, without the lifecycle lock): a suspension racing
    /// it, which holds that lock while it suspends, comes wholly before
    /// it (and is undone) or after it (and stands).
    pub(crate) fn thaw_suspended(&self) -> io::Result<()> {
        let mut suspended = self.suspended.lock().unwrap_or_else(|e| e.into_inner());
        match suspended.take() {
            Some(held) if !self.is_closed() => suspend::resume(held),
            _ => Ok(()),
        }
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Puts a running process (and the children it starts from now on) in
    /// the job; suspended with the rest while the group is. Refused once a
    /// close or teardown has begun, as on Unix: a close marks the group
    /// closed under the lifecycle lock's write side, so a move either lands
    /// before it (and the close's termination ends the process) or is
    /// refused, and the process is left where it was. (A terminated job
    /// stays usable: a process moved in after the close's termination ran
    /// on until the group was dropped.)
    pub(crate) fn adopt(&self, pid: i32) -> Result<(), ControlError> {
        let _placing = self.lifecycle.read().unwrap_or_else(|e| e.into_inner());
        if self.is_closed() {
            return Err(ControlError::Os(io::Error::other(
                "the group has been closed",
            )));
        }
        // The lifecycle lock keeps the group suspended, or not, meanwhile.
        let mut suspended = self.suspended.lock().unwrap_or_else(|e| e.into_inner());
        let process =
            super::open_process(pid as u32, suspended.is_some()).map_err(ControlError::Os)?;
        self.job.assign(&process).map_err(ControlError::Os)?;
        if let Some(held) = suspended.as_mut() {
            suspend::process(&process, Step::Suspend).map_err(ControlError::Os)?;
            held.push(process);
        }
        Ok(())
    }

    pub(crate) fn limit_info(&self) -> Vec<LimitInfo> {
        self.limits.clone()
    }

    /// The live processes in the job, with their executable names.
    pub(crate) fn processes(&self) -> io::Result<Vec<ProcessInfo>> {
        let pids = self.job.pids()?;
        let names = super::process_names();
        Ok(pids
            .into_iter()
            .map(|pid| ProcessInfo {
                pid,
                name: names.get(&pid).cloned(),
            })
            .collect())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.teardown_now();
        // Closing the job's handle (a field) kills anything still in it.
    }
}

/// The CPU caps, set on a job after its creation, each by its own call.
#[derive(Debug, Default)]
struct CpuCaps {
    /// The CPU rate, in 1/10000ths of the machine.
    rate: Option<u32>,
    /// The CPUs the processes may run on (a mask of the first 64).
    affinity: Option<usize>,
}

/// The job's share of `limits` (its CPU caps apart), or the first cap it
/// can't carry.
fn job_caps(limits: &Limits) -> Result<(JobCaps, CpuCaps, Vec<LimitInfo>), LimitError> {
    let refuse = |cap: &'static str, why: &str| Err(LimitError::new(cap, why.to_string()));
    if limits.memory_high.is_some() {
        return refuse("memory_high", "a Job Object has no soft memory limit");
    }
    if limits.memory_swap_max.is_some() {
        return refuse("memory_swap_max", "a Job Object has no swap limit");
    }
    let mut caps = JobCaps::default();
    let mut cpu = CpuCaps::default();
    let mut info = Vec::new();
    let mut note = |cap: &'static str, value: String, by: &str| {
        info.push(LimitInfo {
            cap,
            value,
            enforced_by: by.to_string(),
        })
    };
    // Wine takes these two limits and enforces neither.
    let wine = |cap: &'static str, what: &str| {
        LimitError::new(
            cap,
            format!("Wine accepts a job's {what} but does not enforce it"),
        )
    };
    if let Some(bytes) = limits.memory_max {
        if super::under_wine() {
            return Err(wine("memory_max", "memory limit"));
        }
        caps.memory = Some(bytes);
        note(
            "memory_max",
            bytes.to_string(),
            "Job Object memory limit (committed memory)",
        );
    }
    if let Some(n) = limits.max_processes {
        if super::under_wine() {
            return Err(wine("max_processes", "active process limit"));
        }
        caps.processes = Some(u32::try_from(n).unwrap_or(u32::MAX));
        note(
            "max_processes",
            n.to_string(),
            "Job Object active process limit",
        );
    }
    if let Some(list) = &limits.cpus {
        cpu.affinity =
            Some(super::job::affinity_mask(list).map_err(|why| LimitError::new("cpus", why))?);
        note("cpus", list.clone(), "Job Object CPU affinity");
    }
    if let Some(cores) = limits.cpu_quota {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        cpu.rate = Some(((cores / cpus) * 10_000.0).round().clamp(1.0, 10_000.0) as u32);
        note(
            "cpu_quota",
            cores.to_string(),
            "Job Object CPU rate hard cap",
        );
    }
    Ok((caps, cpu, info))
}
