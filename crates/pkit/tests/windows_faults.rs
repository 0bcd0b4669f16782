//! Fault injection on Windows (hidden feature `fault-injection`): a pty
//! session's console creation that fails is tried again, a few times, and
//! one whose arguments are refused is not. Built for
//! x86_64-pc-windows-gnu and run under Wine by `.ci/windows/run`, or
//! natively. One test: the faults are process-wide.
#![cfg(windows)]

use std::time::Duration;

use pkit::fault::{self, Point};
use pkit::Command;

/// `HRESULT_FROM_WIN32(ERROR_INVALID_FUNCTION)`: what Wine's
/// `CreatePseudoConsole` returns when it fails under load.
const INVALID_FUNCTION: i32 = 0x8007_0001_u32 as i32;
/// `E_INVALIDARG`: the console's arguments refused.
const INVALID_ARG: i32 = 0x8007_0057_u32 as i32;

/// A program on a pseudo console: this test binary listing its tests.
fn session() -> Command {
    Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .pty(24, 80)
        .timeout(Duration::from_secs(60))
}

/// The `HRESULT` an error carries, if it is an OS error.
fn hresult(err: &pkit::Error) -> Option<i32> {
    let source = std::error::Error::source(err)?;
    source.downcast_ref::<std::io::Error>()?.raw_os_error()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_creation_that_fails_is_tried_again() {
    // Two failures: the third try makes the console.
    fault::inject(Point::ConsoleCreate, INVALID_FUNCTION, 2);
    let out = session().output().await;
    let left = fault::pending(Point::ConsoleCreate);
    fault::clear();
    let out = out.expect("the third try makes the console");
    assert!(out.success(), "{out:?}");
    assert!(!left, "both failures were met");

    // Three: the session is refused with the last one.
    fault::inject(Point::ConsoleCreate, INVALID_FUNCTION, 3);
    let err = session().output().await.unwrap_err();
    let left = fault::pending(Point::ConsoleCreate);
    fault::clear();
    assert_eq!(hresult(&err), Some(INVALID_FUNCTION), "{err:?}");
    assert!(!left, "three tries");

    // Refused arguments are not tried again: one failure armed of two.
    fault::inject(Point::ConsoleCreate, INVALID_ARG, 2);
    let err = session().output().await.unwrap_err();
    let left = fault::pending(Point::ConsoleCreate);
    fault::clear();
    assert_eq!(hresult(&err), Some(INVALID_ARG), "{err:?}");
    assert!(left, "E_INVALIDARG was tried again");

    // Nothing armed: a session as usual.
    let out = session().output().await.unwrap();
    assert!(out.success(), "{out:?}");
}
