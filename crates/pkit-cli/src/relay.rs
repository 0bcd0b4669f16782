//! What the run loop does with a signal pkit got: decided at once (the
//! report, a request to end counted, a third one's kill), and the signals
//! that go on to the program or its tree sent by [`Relays`], one after the
//! other in the order they were asked for, while the loop goes on.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::args::RunArgs;
use crate::forward::{Forwarder, Run};
use crate::report::{Kill, Report};
use crate::signame;
use crate::sys::{self, sig, Received};
use crate::tty::Terminal;

/// A send the run loop asked for, made in its turn.
enum Job {
    /// The signal pkit got, passed on where a wrapper should
    /// ([`Forwarder::forward`]).
    Forward(i32),
    /// A first request to end: passed on unless the terminal delivered it
    /// already; then `-k` is armed.
    FirstRequest { sig: i32, delivered: bool },
    /// The tree's ending (`--signal`, then SIGCONT: a timeout's, with
    /// --foreground the program's alone; a second request's, the whole
    /// tree's, `tree`); then the grace is armed. A second request's
    /// signal that could not reach the tree, so killed it, is the run's
    /// kill.
    Ending { sig: i32, tree: bool },
    /// A stop signal pkit got (`Received`), and whether the terminal
    /// delivered it to the program already: pkit stops with its job.
    Stop { r: Received, delivered: bool },
    /// SIGCONT to pkit, and whether the terminal delivered it already.
    Cont { delivered: bool },
}

/// What a finished [`Job`] changes in the run's state.
#[derive(Default)]
struct Done {
    /// The grace (or `-k`) to arm now that its signal went out.
    arm: Option<Duration>,
    /// The tree was killed at once.
    kill: Option<Kill>,
    /// pkit stopped with its job and continued the tree itself.
    continued: bool,
}

type Running<'a> = Pin<Box<dyn Future<Output = Done> + 'a>>;

/// The sends the run loop asked for, in order: one at a time, the rest
/// queued behind it. Under cgroup v2 a send to the whole tree awaits the
/// cgroup's freeze (up to 5 s for a member that can't be frozen); the run
/// loop polls [`Relays::next`] among its other branches, so the timeout,
/// the program's end, the grace's SIGKILL and the next signal are seen
/// meanwhile, and a signal read later is sent only after the ones before
/// it (a TERM after a TSTP does not overtake it).
pub struct Relays<'a> {
    fwd: Forwarder<'a>,
    quiet: bool,
    kill_after: Option<Duration>,
    term_signal: i32,
    grace: Duration,
    queue: VecDeque<Job>,
    current: Option<Running<'a>>,
    /// The current job is a stop's.
    current_stops: bool,
    /// The whole tree's kill (a third request's, the grace's), sent
    /// beside the queue, ahead of what waits there: under cgroup v2 it
    /// too awaits the freeze (up to 5 s for a member that can't be
    /// frozen), which held up the run loop when it was awaited there.
    killing: Option<Pin<Box<dyn Future<Output = ()> + 'a>>>,
}

impl<'a> Relays<'a> {
    pub fn new(fwd: &Forwarder<'a>, args: &RunArgs, term_signal: i32, grace: Duration) -> Self {
        Relays {
            fwd: *fwd,
            quiet: args.quiet,
            kill_after: args.kill_after,
            term_signal,
            grace,
            queue: VecDeque::new(),
            current: None,
            current_stops: false,
            killing: None,
        }
    }

    /// Whether nothing is being sent or waits to be.
    pub fn idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty() && self.killing.is_none()
    }

    /// Kills the whole tree (SIGKILL), ahead of the queue and beside the
    /// job under way; the run loop goes on meanwhile. One kill at a time:
    /// a second one asked for while it waits would kill no more.
    pub fn kill(&mut self) {
        if self.killing.is_none() {
            let group = self.fwd.group;
            self.killing = Some(Box::pin(async move {
                crate::testpause::at("kill");
                let _ = group.kill_async().await;
            }));
        }
    }

    /// Whether a stop of pkit's job is under way or waits: the run loop
    /// reads no signal meanwhile. A SIGCONT read while the stop's relay
    /// waited would no longer be pending when pkit looks for one just
    /// before it stops itself (`sys::continued_since_stop`): pkit stopped
    /// with nothing left to continue it.
    pub fn stopping(&self) -> bool {
        self.current_stops || self.queue.iter().any(|j| matches!(j, Job::Stop { .. }))
    }

    /// The timeout's ending, sent in its turn; the grace armed once it
    /// went out.
    pub fn timeout(&mut self, st: &mut Run) {
        self.push(
            st,
            Job::Ending {
                sig: self.term_signal,
                tree: false,
            },
        );
    }

    /// Queues `job`. A signal to pass on that is the last one waiting
    /// already is merged with it, as the kernel merges a signal pkit got
    /// while it is pending: a burst of one signal (`kill -WINCH` to pkit
    /// again and again) whose relays to the tree each wait for the
    /// cgroup's freeze (5 s with a member that can't be frozen) queues no
    /// wait each ahead of the requests and the timeout's ending after it.
    fn push(&mut self, st: &mut Run, job: Job) {
        let again = match (&job, self.queue.back()) {
            (Job::Forward(s), Some(Job::Forward(last))) => s == last,
            _ => false,
        };
        if !again {
            self.queue.push_back(job);
        }
        self.start(st);
    }

    /// Starts the next job if none runs. A SIGCONT's job takes whether
    /// pkit continued the tree itself when it starts: after the stops
    /// before it.
    fn start(&mut self, st: &mut Run) {
        if self.current.is_some() {
            return;
        }
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        let fwd = self.fwd;
        self.current_stops = matches!(job, Job::Stop { .. });
        let (quiet, kill_after, grace) = (self.quiet, self.kill_after, self.grace);
        self.current = Some(match job {
            Job::Forward(s) => Box::pin(async move {
                fwd.forward(s).await;
                Done::default()
            }),
            Job::FirstRequest { sig: s, delivered } => Box::pin(async move {
                first_request(&fwd, s, delivered, quiet).await;
                Done {
                    arm: kill_after,
                    ..Done::default()
                }
            }),
            Job::Ending { sig: s, tree } => Box::pin(async move {
                let fwd = Forwarder {
                    foreground: fwd.foreground && !tree,
                    ..fwd
                };
                let killed = fwd.send_ending(s).await;
                Done {
                    arm: Some(grace),
                    kill: (killed && tree).then_some(Kill::Unreachable(s)),
                    continued: false,
                }
            }),
            Job::Stop { r, delivered } => Box::pin(async move {
                Done {
                    continued: stop(&fwd, r, delivered).await,
                    ..Done::default()
                }
            }),
            Job::Cont { delivered } => {
                let woke = std::mem::take(&mut st.continued);
                Box::pin(async move {
                    cont(&fwd, woke, delivered).await;
                    Done::default()
                })
            }
        });
    }

    /// The current job's end (never, with none), the kill under way
    /// polled meanwhile: give it to [`finished`](Self::finished).
    pub async fn next(&mut self) -> DoneJob {
        loop {
            let (current, killing) = (&mut self.current, &mut self.killing);
            let job = async {
                match current.as_mut() {
                    Some(job) => job.await,
                    None => std::future::pending().await,
                }
            };
            let kill = async {
                match killing.as_mut() {
                    Some(kill) => kill.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = job => {
                    self.current = None;
                    self.current_stops = false;
                    return DoneJob(done);
                }
                () = kill => self.killing = None,
            }
        }
    }

    /// Applies a finished job to the run's state and starts the next.
    /// Nothing is armed once the tree was killed (a third request's
    /// kill, the grace's): the kill stands as the run's.
    pub fn finished(&mut self, done: DoneJob, st: &mut Run) {
        let DoneJob(done) = done;
        st.continued |= done.continued;
        if st.kill.is_none() {
            if let Some(a) = done.arm {
                st.arm(a);
            }
            st.kill = done.kill;
        }
        self.start(st);
    }

    /// Sends what is left, in order (the program has ended: its
    /// leftovers' ending comes after these).
    pub async fn finish(&mut self, st: &mut Run) {
        while self.current.is_some() || !self.queue.is_empty() {
            let done = self.next().await;
            self.finished(done, st);
        }
        if let Some(kill) = self.killing.take() {
            kill.await;
        }
    }
}

/// A finished job, to give to [`Relays::finished`].
pub struct DoneJob(Done);

/// A first request's relay. Windows: the request is a graceful stop, and
/// where no CTRL_BREAK can be delivered that is the termination.
async fn first_request(fwd: &Forwarder<'_>, s: i32, delivered: bool, quiet: bool) {
    if !delivered && !fwd.forward(s).await && cfg!(windows) {
        if !quiet {
            eprintln!(
                "pkit: {}: no CTRL_BREAK could be delivered: terminating the whole tree",
                signame::display(s)
            );
        }
        let _ = fwd.group.kill_async().await;
    }
}

/// A stop signal to pkit; whether pkit stopped with its job (and
/// continued the tree itself after).
async fn stop(fwd: &Forwarder<'_>, r: Received, delivered: bool) -> bool {
    let s = r.signo;
    // The terminal's stop of pkit's job for a read (or a change)
    // of the terminal pkit handed to the program: another stage of
    // the job wants it (`tty.rs`); no stop of the job.
    if s != sig::SIGTSTP && r.from_kernel && fwd.tty.is_some_and(Terminal::give_back_to_job) {
        if fwd.verbose {
            eprintln!(
                "pkit: another process of pkit's job was stopped for the terminal \
                 ({}): the terminal is the job's again, and the job continued",
                signame::display(s)
            );
        }
        return false;
    }
    // In an orphaned process group (`setsid pkit run`, or a job
    // whose shell is gone) the kernel discards a stop signal for a
    // program that does not catch it: no shell could continue the
    // job. pkit drops it the same way, neither stopping itself nor
    // the tree (as timeout(1), which leaves SIGTSTP to the kernel:
    // its --timeout still fires).
    if sys::own_group_orphaned() {
        if fwd.verbose {
            eprintln!(
                "pkit: {} dropped: pkit's process group is orphaned (no shell \
                 could continue it)",
                signame::display(s)
            );
        }
        return false;
    }
    if !delivered {
        fwd.forward(sig::SIGTSTP).await;
    }
    // Stop pkit too, so the shell sees its job stop; `fg` sends
    // SIGCONT, which continues pkit, and pkit the tree.
    fwd.stop_pkit(true, None).await;
    true
}

/// SIGCONT to pkit. `woke`: the SIGCONT that continued pkit after a
/// stop: the tree was continued already, and is not again unless it
/// stopped since (not while its program held the terminal: a Ctrl-Z there
/// stops the job, and a read from before the hand-over is the run loop's
/// look's).
async fn cont(fwd: &Forwarder<'_>, woke: bool, delivered: bool) {
    let held = fwd.tty.is_some_and(Terminal::program_holds);
    if !delivered && (!woke || (!held && fwd.tree_stopped())) {
        fwd.forward(sig::SIGCONT).await;
    }
    // `fg` of a job that ran on in the background (or that and
    // the SIGCONT that woke pkit after a stop, pending at once:
    // one signal): the terminal is pkit's again, once the tree is
    // continued (see `stop_pkit`).
    fwd.take_terminal();
}

/// How soon after a request to end, the same signal from pkit's parent is
/// taken for the parent's relay of it. A nested `pkit run` in its outer's
/// process group (the outer under a cgroup keeps its program, the nested
/// pkit, there) gets a `kill -INT -<group>` twice: from the sender, and
/// relayed by the outer; counted twice, one signal was a second request,
/// and ended the run. Only a parent that may be a pkit counts (on Linux,
/// one running pkit's executable or one of its name: `sys::parent`); a
/// window, not an exact mark: a relay is sent by `Group::signal_async`, which
/// carries no `sigqueue` value (and through `killpg` could carry none),
/// and a marked relay still would not tell the signal the nested pkit got
/// directly from a later one the same sender sent to the outer alone.
pub const RELAYED_WITHIN: Duration = Duration::from_secs(2);

/// A signal pkit got: reported, and acted on at once or queued on
/// `relays` (see [`Relays`]). A third request to end kills the tree now
/// (ahead of the queue: [`Relays::kill`]).
pub fn on_signal(
    r: Received,
    args: &RunArgs,
    relays: &mut Relays<'_>,
    st: &mut Run,
    report: &mut Report,
) {
    let s = r.signo;
    report.signals_received.push(signame::display(s));
    // The terminal sends INT, QUIT, TSTP, WINCH and HUP to its whole
    // foreground process group: a program in pkit's group got it already.
    let delivered = r.from_kernel && relays.fwd.same_pgrp;
    match s {
        sig::SIGTSTP | sig::SIGTTIN | sig::SIGTTOU => relays.push(st, Job::Stop { r, delivered }),
        sig::SIGCONT => relays.push(st, Job::Cont { delivered }),
        sig::SIGINT | sig::SIGQUIT if r.from_kernel => {
            // Ctrl-C / Ctrl-\ from the terminal: the program decides (a REPL
            // survives); never pkit's teardown.
            if !delivered {
                relays.push(st, Job::Forward(s));
            }
        }
        sig::SIGTERM | sig::SIGHUP | sig::SIGINT | sig::SIGQUIT => {
            let now = tokio::time::Instant::now();
            if r.from_parent {
                let relay = st.direct.take();
                if relay.is_some_and(|(d, at)| d == s && now.duration_since(at) <= RELAYED_WITHIN) {
                    // The parent's relay of the one this pkit got already:
                    // one request, listed once in the report.
                    report.signals_received.pop();
                    return;
                }
            } else {
                st.direct = Some((s, now));
            }
            st.end_requests += 1;
            match st.end_requests {
                1 => relays.push(st, Job::FirstRequest { sig: s, delivered }),
                2 => {
                    let term_signal = relays.term_signal;
                    if !args.quiet {
                        eprintln!(
                            "pkit: second {}: ending the whole tree ({}, then SIGKILL after {:?}; \
                             a third signal kills at once)",
                            signame::display(s),
                            signame::display(term_signal),
                            relays.grace
                        );
                    }
                    st.tree_ended = true;
                    let job = Job::Ending {
                        sig: term_signal,
                        tree: true,
                    };
                    relays.push(st, job);
                }
                _ => {
                    if !args.quiet {
                        eprintln!("pkit: {}: killing the whole tree now", signame::display(s));
                    }
                    st.kill = Some(Kill::Requested(s));
                    relays.kill();
                }
            }
        }
        _ => {
            if !delivered {
                relays.push(st, Job::Forward(s));
            }
        }
    }
}
