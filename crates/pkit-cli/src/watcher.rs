//! pkit's side of a watcher process: pkit's own executable started again
//! in a hidden mode (`/proc/self/exe` with a mode argument), whose stdin is
//! a pipe only pkit holds (std's pipe: both ends close-on-exec, so pkit's
//! children get only their stdio). pkit tells it what to do through the
//! pipe and, when all is well, [`DONE`]; the end of the pipe without
//! [`DONE`] tells the watcher pkit is gone (SIGKILL, a crash), and it puts
//! back what pkit would have. Two watchers: the terminal's settings under
//! `--pty` (`termwatch.rs`) and the terminal's foreground group under
//! process groups (`fgwatch.rs`).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// pkit ends as it should: the watcher leaves everything alone and ends.
pub const DONE: u8 = b'D';

/// A started watcher: the child and the pipe's write end.
pub struct Watcher {
    child: Child,
    pipe: ChildStdin,
}

impl Watcher {
    /// Starts `cmd` (the watcher's command line, stdout and stderr set)
    /// with its stdin the pipe.
    pub fn start(cmd: &mut Command) -> std::io::Result<Watcher> {
        let mut child = cmd.stdin(Stdio::piped()).spawn()?;
        let pipe = child.stdin.take().expect("stdin was piped");
        Ok(Watcher { child, pipe })
    }

    /// A message, whole (a pipe takes 4 KiB at once); an ended watcher
    /// makes it fail (EPIPE), which changes nothing: false then.
    pub fn send(&mut self, msg: &[u8]) -> bool {
        self.pipe.write_all(msg).is_ok()
    }

    /// Tells the watcher pkit is done, and waits (briefly) for it to end.
    pub fn finish(mut self) {
        self.send(&[DONE]);
        drop(self.pipe);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                // Ended (or reaped already as an orphan of the run).
                _ => return,
            }
        }
    }
}
