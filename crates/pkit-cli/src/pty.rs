//! `pkit run --pty`: the program on a pseudo-terminal of its own. What it
//! writes to the terminal goes to pkit's stdout (teed by the library);
//! what comes on pkit's stdin is typed into the terminal, byte for byte
//! (pkit's own terminal, if stdin is one, in raw mode meanwhile, so Ctrl-C
//! and the like reach the program's terminal, which interprets them). At
//! the end of pkit's stdin, the terminal's end-of-file character is typed.
//! A window-size change of pkit's terminal resizes the program's. The
//! terminal gets its settings back when pkit ends, stops, or is killed
//! (`termwatch.rs`).

use std::cell::RefCell;
use std::io::Read;

use tokio::io::AsyncWriteExt;

use crate::sys;

/// The size for the program's terminal: pkit's own (stdin's, else
/// stdout's), else 24 x 80.
pub fn size() -> (u16, u16) {
    sys::terminal_size(0)
        .or_else(|| sys::terminal_size(1))
        .unwrap_or((24, 80))
}

/// Relays pkit's stdin to the program's terminal while it lives.
pub struct Relay {
    pty: pkit::Pty,
    raw: RefCell<Option<crate::termwatch::Raw>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying (stdin is read on a thread of its own: a read that
    /// never returns must not hold up pkit's exit).
    pub fn start(pty: pkit::Pty) -> Relay {
        let raw = crate::termwatch::Raw::enter();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let _ = std::thread::Builder::new()
            .name("pkit-stdin".into())
            .spawn(move || {
                let mut stdin = std::io::stdin();
                let mut buf = vec![0u8; 16 * 1024];
                // The last read failed, and not on pkit's terminal.
                let mut failed = false;
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            failed = false;
                            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => {
                            crate::testpause::at("stdin-error");
                            if sys::stdin_is_own_terminal() {
                                // pkit's terminal, not hung up: the read
                                // was refused with pkit's job in the
                                // background (`bg`: EIO, SIGTTIN being
                                // blocked), there now or when it read:
                                // `fg` may have come since, once or more,
                                // so nothing tells how many refusals are
                                // too many, and none is the end. Nothing
                                // is typed meanwhile, no end of file
                                // either (it would end the program); the
                                // reads go on, once it is back (`fg`).
                                failed = false;
                                if tx.is_closed() {
                                    return;
                                }
                                std::thread::sleep(std::time::Duration::from_millis(50));
                            } else if std::mem::replace(&mut failed, true) {
                                // Twice in a row on what is not (or no
                                // more) pkit's terminal: the end of it.
                                return;
                            }
                        }
                    }
                }
            });
        let mut writer = pty.clone();
        let task = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = writer.send_control('d').await;
        });
        Relay {
            pty,
            raw: RefCell::new(raw),
            task,
        }
    }

    /// pkit's terminal gets its settings back (pkit is about to stop).
    pub fn suspend(&self) {
        if let Some(r) = self.raw.borrow_mut().as_mut() {
            r.suspend();
        }
    }

    /// Raw mode again once pkit continued in the foreground (after its
    /// stop, or, run on in the background, on `fg`'s SIGCONT).
    pub fn resume(&self) {
        if let Some(r) = self.raw.borrow_mut().as_mut() {
            r.resume();
        }
    }

    /// Gives the program's terminal pkit's terminal's new size.
    pub fn follow_resize(&self) {
        if let Some((rows, cols)) = sys::terminal_size(0).or_else(|| sys::terminal_size(1)) {
            let _ = self.pty.resize(rows, cols);
        }
    }
}

impl Drop for Relay {
    /// Stops typing; pkit's terminal gets its settings back.
    fn drop(&mut self) {
        self.task.abort();
        self.raw.get_mut().take();
    }
}
