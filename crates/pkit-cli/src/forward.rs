//! Where signals to pkit go, and the run's state they change.

use std::time::Duration;

use pkit::{Group, Signal};

use crate::report::Kill;
use crate::signame;
use crate::sys::{self, sig};
use crate::tty::Terminal;

/// What the run loop saw.
#[derive(Default)]
pub struct Run {
    pub timed_out: bool,
    /// Why pkit SIGKILLed the whole tree while the program ran, if it did.
    pub kill: Option<Kill>,
    /// TERM/HUP, or INT/QUIT sent by a process: requests to end.
    pub end_requests: u32,
    pub kill_at: Option<tokio::time::Instant>,
    /// The whole tree was sent --signal (a timeout without --foreground,
    /// a teardown): its leftovers had their ending already. A first
    /// request to end with -k arms `kill_at` having signalled the program
    /// alone: then its leftovers still get --signal when it ends.
    pub tree_ended: bool,
    /// pkit was stopped with its job and has continued the program's tree
    /// itself: the SIGCONT that woke pkit (the shell's `fg` or `bg`),
    /// read next, is not forwarded again unless a process of the tree is
    /// stopped by then. (That read may be a later SIGCONT too, `fg` after
    /// `bg`, when both were pending at once, which is one signal: every
    /// SIGCONT takes the terminal again, whichever it is.)
    pub continued: bool,
    /// The last request to end that came from a process other than pkit's
    /// parent, and when: the same signal relayed by the parent soon after
    /// is that one again (`relay::RELAYED_WITHIN`).
    pub direct: Option<(i32, tokio::time::Instant)>,
    /// The program is stopped by a SIGSTOP pkit leaves alone (its process
    /// group orphaned: [`Forwarder::program_stopped`]): not looked at
    /// again until that stop is over.
    pub left_stopped: bool,
    /// When the program was first seen stopped for the terminal its job
    /// keeps, pkit not alone in that job: the stop of the job waits a
    /// moment ([`TERMINAL_WAIT`]) for a stage about to end.
    pub terminal_wait: Option<tokio::time::Instant>,
    /// When the program was first seen stopped with no stop to read yet
    /// ([`STOP_WAIT`]).
    pub stop_unknown: Option<tokio::time::Instant>,
}

/// How long a program stopped for the terminal waits for pkit to be alone
/// in its job before pkit stops the job: a pipeline's stage before pkit
/// that has done its part (`echo x | pkit run -- …`: the subshell of
/// `echo`) can still be there, on a loaded machine, when the program
/// first reads the terminal; the job would have been stopped for a read
/// that goes through without pkit.
const TERMINAL_WAIT: Duration = Duration::from_secs(1);

/// How long a program seen stopped (`/proc`) whose stop `waitid` does not
/// report yet is looked at again before pkit takes it for a Ctrl-Z: a
/// program of several threads (a nested pkit) stops one thread at a time,
/// and its parent hears of the stop, and of its signal, once every thread
/// has. A nested pkit's stop for its program's read of the terminal
/// (SIGTTIN) taken for a Ctrl-Z had the job stopped again after `fg`.
const STOP_WAIT: Duration = Duration::from_secs(1);

impl Run {
    /// Arms SIGKILL `after` from now, unless it is armed sooner already
    /// (`inf`, or a time past the clock's range, never fires).
    pub fn arm(&mut self, after: Duration) {
        let Some(at) = from_now(after) else { return };
        if self.kill_at.is_none_or(|k| at < k) {
            self.kill_at = Some(at);
        }
    }
}

/// `d` from now, if the clock can represent it.
pub fn from_now(d: Duration) -> Option<tokio::time::Instant> {
    tokio::time::Instant::now().checked_add(d)
}

pub async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends signals to the tree, or to the program alone with --foreground.
#[derive(Clone, Copy)]
pub struct Forwarder<'a> {
    pub group: &'a Group,
    pub pid: u32,
    pub foreground: bool,
    pub verbose: bool,
    pub same_pgrp: bool,
    /// The terminal, when it was handed to the program's group.
    pub tty: Option<&'a Terminal>,
    /// `--pty`'s relay, whose raw mode must not outlive a stop.
    pub relay: Option<&'a crate::pty::Relay>,
    /// Set once the run loop's wait for the program has returned: it is
    /// reaped, and its pid may be another process's. A relay sent after
    /// that (`Relays::finish`) to the program alone goes nowhere.
    pub ended: &'a std::cell::Cell<bool>,
}

impl Forwarder<'_> {
    pub fn target(&self) -> &'static str {
        if self.foreground {
            "the program"
        } else {
            "the whole tree"
        }
    }

    /// Sends `sig` where a wrapper should: the signals a terminal or a
    /// shell's job control sends to a whole foreground job (INT, QUIT,
    /// TSTP, WINCH, HUP, CONT) to the whole tree; the ones `kill` sends to
    /// one pid (TERM, USR1, USR2, ALRM) to the program, as if sent to it.
    /// False when it could not be sent.
    pub async fn forward(&self, sig: i32) -> bool {
        let job = [
            sig::SIGINT,
            sig::SIGQUIT,
            sig::SIGTSTP,
            sig::SIGWINCH,
            sig::SIGHUP,
            sig::SIGCONT,
        ];
        if job.contains(&sig) {
            self.send(sig).await
        } else {
            self.send_to(sig, true).await
        }
    }

    /// Sends `sig`; false when it could not be sent.
    pub async fn send(&self, sig: i32) -> bool {
        self.send_to(sig, self.foreground).await
    }

    async fn send_to(&self, sig: i32, program_only: bool) -> bool {
        !matches!(self.try_send(sig, program_only).await, Sent::Missed)
    }

    /// Under cgroup v2 the tree's signal awaits the cgroup's freeze (up to
    /// 5 s for a member that can't be frozen): the runtime's other tasks
    /// (`--pty`'s relay of the terminal's output, the library's) run
    /// meanwhile, and so does the run loop (it polls the relays among its
    /// other branches: `relay::Relays`).
    async fn try_send(&self, sig: i32, program_only: bool) -> Sent {
        if self.verbose {
            let to = if program_only {
                "the program"
            } else {
                "the whole tree"
            };
            eprintln!("pkit: sending {} to {to}", signame::display(sig));
        }
        if program_only {
            // The program is unreaped until the run loop's wait returns,
            // so its pid can't have been reused; after that it is gone,
            // and there is nothing to send.
            if self.ended.get() {
                return Sent::All;
            }
            return match sys::kill(self.pid, sig) {
                Ok(()) => Sent::All,
                Err(_) => Sent::Missed,
            };
        }
        match self.group.signal_async(Signal::from_raw(sig)).await {
            Ok(()) => Sent::All,
            // A member this user may not signal (a setuid program's
            // child, say): the others had it, and the grace is theirs.
            Err(pkit::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                if self.verbose {
                    eprintln!(
                        "pkit: {} was refused by a process of the tree ({source}); \
                         the others have their grace",
                        signame::display(sig)
                    );
                }
                Sent::Denied
            }
            Err(_) => Sent::Missed,
        }
    }

    /// Stops pkit as its job was stopped: the terminal goes back to the
    /// shell first (handed back, or its settings restored); once pkit
    /// continues (`fg`, or `bg`), it takes it again if its job is in the
    /// foreground, and continues the program's tree, once: the SIGCONT
    /// that woke pkit is not forwarded on top ([`Run::continued`]).
    /// `signalled`: the stop is a stop signal's the run loop read (not the
    /// terminal's stop of the program's group): a SIGCONT that came after
    /// that signal, while pkit stopped the tree, cancels pkit's own stop,
    /// as the kernel drops a stop signal a SIGCONT follows; the rest goes
    /// on as if that SIGCONT had continued pkit.
    /// `mates`: the signal the rest of pkit's job (its process group) gets
    /// first, when the stop is the program's group's: a SIGCONT after
    /// that cancels pkit's own stop likewise.
    pub async fn stop_pkit(&self, signalled: bool, mates: Option<i32>) {
        if let Some(r) = self.relay {
            r.suspend();
        }
        if let Some(t) = self.tty {
            t.take_back();
        }
        // The terminal is back with pkit's job before its other processes
        // stop, so the shell, seeing them stopped, takes it from there.
        // (With the shells waiting for pkit left to the watcher, to stop
        // once pkit is, pkit stops whatever comes: nobody has seen its job
        // stopped yet, so no SIGCONT can be the one that continues it.)
        let (signalled, deferred) = match mates {
            Some(sig) => {
                let marked = sys::mark_stop();
                let deferred = crate::tty::stop_job_mates(sig, self.tty);
                (marked && !deferred, deferred)
            }
            None => (signalled, false),
        };
        crate::testpause::at("stopping");
        // (A SIGCONT between this look and the stop itself is still lost:
        // any stop signal, pkit's SIGSTOP too, discards a pending SIGCONT,
        // and no user-space stop can be made one step with the look. The
        // window is these few instructions, where it was the whole stop of
        // the tree.)
        // Stopped for the terminal, pkit stops by the program's signal
        // (SIGTTIN, SIGTTOU), else by SIGSTOP: an outer pkit whose program
        // this pkit is sees that its program asked for the terminal.
        if !(signalled && sys::continued_since_stop()) {
            crate::testpause::at("self-stop");
            match mates {
                Some(sig) => sys::stop_self_for_terminal(sig),
                None => sys::stop_self(),
            }
        } else if self.verbose {
            eprintln!("pkit: continued before it stopped: going on");
        }
        if let Some(t) = self.tty.filter(|_| deferred) {
            t.continued();
        }
        // The tree is continued before the program's group gets the
        // terminal: a Ctrl-Z before the hand-over reaches pkit's job (pkit
        // passes it on and stops), one after it the running program. (The
        // other way round, a Ctrl-Z between the two reached a group still
        // stopped, and the SIGCONT discarded it.) A read of the terminal
        // the program retried before the hand-over stopped it: the run
        // loop continues it ([`Self::program_stopped`]).
        if !self.same_pgrp || self.tree_stopped() {
            let _ = self.group.signal_async(Signal::Cont).await;
        }
        crate::testpause::at("continued");
        self.take_terminal();
        crate::testpause::at("handed");
    }

    /// The program, holding the terminal in a process group of its own,
    /// is stopped (seen by the run loop's look at it): pkit stops with it,
    /// as a shell's job does ([`Self::stop_pkit`]), unless pkit's own
    /// process group is orphaned (pkit leads its session: `ssh -t host
    /// pkit run …`, `docker run -it`, `script -c`, a child of `pty.fork()`;
    /// or its shell has gone), where nothing would ever continue pkit.
    /// There the program's group is not orphaned (pkit, its parent, is in
    /// another group of the session), so the kernel stopped it where it
    /// would have dropped the stop had the program been in pkit's group,
    /// as under a cgroup: a job-control stop (SIGTSTP from Ctrl-Z,
    /// SIGTTIN, SIGTTOU) is undone, SIGCONT to the tree; a SIGSTOP, which
    /// no kernel drops, is left as it is under a cgroup (`--timeout`
    /// still fires, and its ending continues the tree).
    /// `by`: the signal that stopped it, if known.
    pub async fn program_stopped(&self, st: &mut Run, by: Option<i32>) {
        let job_stop = by.is_some_and(|s| [sig::SIGTSTP, sig::SIGTTIN, sig::SIGTTOU].contains(&s));
        if st.left_stopped && !job_stop {
            return;
        }
        st.left_stopped = false;
        if by.is_none() {
            let first = *st
                .stop_unknown
                .get_or_insert_with(tokio::time::Instant::now);
            if first.elapsed() < STOP_WAIT {
                return;
            }
        }
        st.stop_unknown = None;
        // Stopped reading (or setting) the terminal pkit did not hand it
        // (kept for a pipeline, or pkit's job was in the background): it
        // gets it now if pkit's job has it and pkit is alone there, and
        // goes on; else on the job's next `fg` (`tty.rs`).
        let for_terminal = by.is_some_and(|s| s == sig::SIGTTIN || s == sig::SIGTTOU);
        let mut by = by;
        if let Some(t) = self.tty.filter(|_| for_terminal) {
            if t.claim() {
                st.terminal_wait = None;
                // A Ctrl-Z since, at the program stopped, waits there: the
                // SIGCONT would discard it. It stops the job instead.
                if !self.stop_pending() {
                    let _ = self.group.signal_async(Signal::Cont).await;
                    return;
                }
                by = Some(sig::SIGTSTP);
            } else {
                // pkit's job in the foreground, pkit not alone in it:
                // looked at again at the run loop's next looks, for a
                // moment.
                let first = *st
                    .terminal_wait
                    .get_or_insert_with(tokio::time::Instant::now);
                if first.elapsed() < TERMINAL_WAIT
                    && t.job_in_foreground()
                    && !sys::own_group_orphaned()
                {
                    return;
                }
                t.ask();
            }
        }
        st.terminal_wait = None;
        if !sys::own_group_orphaned() {
            // The rest of pkit's job (a pipeline's other stages, a shell
            // waiting for pkit) stops too, by the same signal: the
            // terminal's Ctrl-Z reached the program's group alone, and a
            // read from the background stops the whole job. The shell sees
            // its job stopped only once every process of it is.
            self.stop_pkit(false, Some(by.unwrap_or(sig::SIGTSTP)))
                .await;
            st.continued = true;
            return;
        }
        let how = by.map_or_else(|| "a stop".to_string(), signame::display);
        if job_stop {
            if self.verbose {
                eprintln!(
                    "pkit: the program was stopped ({how}) while pkit's process group is \
                     orphaned (no shell could continue it): continuing the whole tree"
                );
            }
            let _ = self.group.signal_async(Signal::Cont).await;
        } else {
            if self.verbose {
                eprintln!(
                    "pkit: the program was stopped ({how}) while pkit's process group is \
                     orphaned: pkit does not stop with it (no shell could continue pkit)"
                );
            }
            st.left_stopped = true;
        }
    }

    /// The terminal is the run's again if pkit's job is in its foreground
    /// (after `fg`, or a stop continued there): raw for --pty's relay,
    /// handed to the program's process group. Nothing changes otherwise,
    /// or when it is so already.
    pub fn take_terminal(&self) {
        if let Some(r) = self.relay {
            r.resume();
        }
        if let Some(t) = self.tty {
            t.hand_over();
        }
    }

    /// The program, not stopped itself, can't run on because a child it
    /// started with `vfork(2)` is stopped (a Ctrl-Z in that window:
    /// `sys::held_by_stopped_child`): the stop signal that waits at the
    /// program. The run loop takes that for the program's stop: the job
    /// is stopped all the same.
    pub fn held_by_stopped_child(&self) -> Option<i32> {
        sys::held_by_stopped_child(self.pid, &|| self.group.pids().ok())
    }

    /// Whether a stop signal waits at a process of the tree (sent while it
    /// was stopped).
    fn stop_pending(&self) -> bool {
        self.group.pids().is_ok_and(|pids| sys::stop_pending(&pids))
    }

    /// Whether a process of the tree is stopped. (In pkit's process group,
    /// the program got the shell's SIGCONT with pkit; a part of the tree
    /// in groups of its own, stopped by a forwarded SIGTSTP, did not.)
    pub fn tree_stopped(&self) -> bool {
        self.group
            .pids()
            .is_ok_and(|pids| pids.into_iter().any(|p| sys::state_of(p) == Some('T')))
    }

    /// `sig` as an ending signal: followed by SIGCONT so a stopped tree
    /// acts on it (as timeout(1) does).
    /// A signal that could not reach the whole tree (the polite stop on
    /// Windows is a CTRL_BREAK that reaches console programs only; on Unix
    /// a cgroup's members could not all be listed or signalled, e.g. at the
    /// descriptor limit) is the kill of the whole tree at once, not a grace
    /// nobody was asked to use: true when it came to that. A process that refused the signal (`EPERM`: one this user
    /// may not signal) does not end the others' grace.
    pub async fn send_ending(&self, sig: i32) -> bool {
        if matches!(self.try_send(sig, self.foreground).await, Sent::Missed) {
            if self.verbose {
                eprintln!(
                    "pkit: {} could not reach the whole tree: killing it now",
                    signame::display(sig)
                );
            }
            // A kill that failed too (at the descriptor limit, say) is
            // not waited out: the run's close ends the tree with what
            // needs the fewest descriptors (cgroup.kill through the
            // reserve), and verifies it.
            if let Err(e) = self.group.kill_async().await {
                if self.verbose {
                    eprintln!("pkit: killing the tree failed ({e}); the close ends it");
                }
            }
            return true;
        }
        if sig != sig::SIGKILL && sig != sig::SIGCONT {
            self.send(sig::SIGCONT).await;
        }
        false
    }
}

/// How far a signal got.
enum Sent {
    /// Everyone it was for.
    All,
    /// Everyone but processes that refused it (`EPERM`).
    Denied,
    /// Not (all) of the tree: it could not be sent or listed.
    Missed,
}
