//! Handles for a child's stdio and the pipes pkit reads and writes: the
//! parent's ends are overlapped named pipes driven by Tokio, the child's
//! ends ordinary synchronous handles.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::windows::io::{AsHandle, BorrowedHandle, IntoRawHandle, OwnedHandle};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::NamedPipeServer;
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_INBOUND, PIPE_ACCESS_OUTBOUND,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
};

use super::super::{fault, ChildSetup, IoRequest, ReadStep};
use super::{owned, unsupported, wide};

/// A handle (the name keeps the Unix code's vocabulary).
pub(crate) type OwnedFd = OwnedHandle;
/// A borrowed handle.
pub(crate) type BorrowedFd<'a> = BorrowedHandle<'a>;
/// A descriptor number, as `keep_fds` takes them; Windows refuses them.
pub(crate) type RawFd = i32;

/// [`AsHandle`] under the Unix code's name.
pub(crate) trait AsFd {
    /// Borrows the handle.
    fn as_fd(&self) -> BorrowedHandle<'_>;
}

impl<T: AsHandle> AsFd for T {
    fn as_fd(&self) -> BorrowedHandle<'_> {
        self.as_handle()
    }
}

/// A string as `CreateProcessW` takes it (converted to UTF-16 there).
pub(crate) type NativeString = OsString;

/// `s` as the OS takes it; `None` if it contains a NUL.
pub(crate) fn native_string(s: &OsStr) -> Option<NativeString> {
    use std::os::windows::ffi::OsStrExt;
    (!s.encode_wide().any(|c| c == 0)).then(|| s.to_os_string())
}

/// The environment of a child whose command changes no variable: the
/// parent's block, handed on by `CreateProcessW` as it is.
pub(crate) fn inherited_env() -> crate::sys::ChildEnv {
    crate::sys::ChildEnv::Inherited
}

/// A child's exact environment: its `NAME=value` entries (joined into one
/// block by the spawn).
pub(crate) type EnvBlock = Vec<NativeString>;

/// One `NAME=value` environment entry; `None` if either contains a NUL.
fn env_entry(name: &OsStr, value: &OsStr) -> Option<NativeString> {
    let mut kv = native_string(name)?;
    kv.push("=");
    kv.push(native_string(value)?);
    Some(kv)
}

/// The environment of a child whose command changed variables: exactly
/// `vars`; `None` if a name or value holds a NUL.
pub(crate) fn exact_env<K, V>(vars: &[(K, V)]) -> Option<crate::sys::ChildEnv>
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let entries = vars
        .iter()
        .map(|(k, v)| env_entry(k.as_ref(), v.as_ref()))
        .collect::<Option<EnvBlock>>()?;
    Some(crate::sys::ChildEnv::Exactly(entries))
}

/// Whether an environment variable's name is the search path's (`Path`,
/// `PATH`: names are case-insensitive on Windows).
pub(crate) fn is_path_var(name: &OsStr) -> bool {
    name.eq_ignore_ascii_case("PATH")
}

/// An environment variable's name as compared: Windows compares names
/// without regard to case (`Path` is `PATH`), so each letter is taken in
/// upper case (one that has no one-letter upper case, and a lone
/// surrogate, as it is).
pub(crate) fn env_name_key(name: &OsStr) -> std::borrow::Cow<'_, OsStr> {
    use std::os::windows::ffi::{OsStrExt, OsStringExt};
    let upper = |c: char| {
        let mut up = c.to_uppercase();
        match (up.next(), up.next()) {
            (Some(u), None) => u,
            _ => c,
        }
    };
    let mut wide = Vec::with_capacity(name.len());
    for unit in char::decode_utf16(name.encode_wide()) {
        match unit {
            Ok(c) => {
                let mut buf = [0u16; 2];
                wide.extend_from_slice(upper(c).encode_utf16(&mut buf));
            }
            Err(lone) => wide.push(lone.unpaired_surrogate()),
        }
    }
    std::borrow::Cow::Owned(OsString::from_wide(&wide))
}

/// What an exec failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecFailure {
    /// The file is missing.
    Missing,
    /// The file is there but is not a program Windows can start.
    NotExecutable,
    /// Never on Windows (a Unix path that can't be followed).
    Unreachable,
    /// Anything else.
    Other,
}

/// Classifies a `CreateProcessW` failure.
pub(crate) fn exec_failure(e: &io::Error) -> ExecFailure {
    use windows_sys::Win32::Foundation::{
        ERROR_ACCESS_DENIED, ERROR_BAD_EXE_FORMAT, ERROR_EXE_MACHINE_TYPE_MISMATCH,
        ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND,
    };
    match e.raw_os_error().map(|c| c as u32) {
        Some(ERROR_FILE_NOT_FOUND) | Some(ERROR_PATH_NOT_FOUND) => ExecFailure::Missing,
        Some(ERROR_ACCESS_DENIED)
        | Some(ERROR_BAD_EXE_FORMAT)
        | Some(ERROR_EXE_MACHINE_TYPE_MISMATCH) => ExecFailure::NotExecutable,
        _ => ExecFailure::Other,
    }
}

/// The error "not a directory", for a working directory that is a file.
pub(crate) fn not_a_directory() -> io::Error {
    io::Error::from_raw_os_error(windows_sys::Win32::Foundation::ERROR_DIRECTORY as i32)
}

/// What a child gets on one of its stdio handles.
#[derive(Debug)]
pub(crate) enum ChildIo {
    /// The parent's own handle.
    Inherit,
    /// This handle (duplicated, inheritable, into the child).
    Fd(OwnedHandle),
    /// The `NUL` device.
    Null,
    /// For stderr: whatever the child's stdout is (`2>&1`).
    SameAsStdout,
    /// A pty session's pseudo console (all three streams): the child is
    /// created on it (`pty_spawn.rs`).
    Console(std::sync::Arc<super::console::Console>),
}

/// A fully prepared spawn: the program is resolved, the stdio handles are
/// open.
#[derive(Debug)]
pub(crate) struct SpawnSpec {
    pub path: NativeString,
    /// `argv[0]` first (Windows builds the command line from it).
    pub argv: Vec<NativeString>,
    /// The child's environment: ours, or exactly these `NAME=value` entries.
    pub envp: crate::sys::ChildEnv,
    pub cwd: Option<NativeString>,
    pub stdin: ChildIo,
    pub stdout: ChildIo,
    pub stderr: ChildIo,
    /// The Unix spawn options: always empty here (refused before).
    pub setup: ChildSetup,
}

/// Opens what the child gets for one stream, and the parent's end of the
/// pipe when one is requested. `input` says which way the pipe flows.
pub(crate) fn child_io(req: IoRequest, input: bool) -> io::Result<(ChildIo, Option<OwnedFd>)> {
    Ok(match req {
        IoRequest::Inherit => (ChildIo::Inherit, None),
        IoRequest::Null => (ChildIo::Null, None),
        IoRequest::Pipe => {
            fault::io_check(fault::Point::Pipe)?;
            let (server, client) = named_pipe(input)?;
            (ChildIo::Fd(client), Some(server))
        }
    })
}

/// A named pipe for one stream: (the parent's overlapped server end, the
/// child's synchronous client end). `to_child`: the parent writes.
pub(super) fn named_pipe(to_child: bool) -> io::Result<(OwnedHandle, OwnedHandle)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        r"\\.\pipe\pkit-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let wname = wide(OsStr::new(&name));
    let access = if to_child {
        PIPE_ACCESS_OUTBOUND
    } else {
        PIPE_ACCESS_INBOUND
    };
    // SAFETY: `wname` is NUL-terminated UTF-16 that outlives the call; a
    // null security-attributes pointer means a non-inheritable handle.
    let server = owned(unsafe {
        CreateNamedPipeW(
            wname.as_ptr(),
            access | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            std::ptr::null(),
        )
    })?;
    let client = std::fs::OpenOptions::new()
        .read(to_child)
        .write(!to_child)
        .open(&name)?;
    Ok((server, client.into()))
}

/// The pipes' buffer size (a hint to the kernel).
const PIPE_BUFFER: u32 = 64 * 1024;

/// Opens (creates) `path` for writing as a child's stdout or stderr:
/// appending, or truncated first.
pub(crate) fn child_io_output_file(
    path: &std::path::Path,
    append: bool,
    _wait: &crate::sys::OpenWait<'_>,
) -> io::Result<ChildIo> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    Ok(ChildIo::Fd(o.open(path)?.into()))
}

/// Opens `path` for reading as a child's stdin.
pub(crate) fn child_io_file(
    path: &std::path::Path,
    _wait: &crate::sys::OpenWait<'_>,
) -> io::Result<ChildIo> {
    Ok(ChildIo::Fd(std::fs::File::open(path)?.into()))
}

/// A pipe between two pipeline stages: (read end, write end), both
/// synchronous, to be one child's stdin and another's stdout.
pub(crate) fn stage_pipe() -> io::Result<(ChildIo, ChildIo)> {
    fault::io_check(fault::Point::Pipe)?;
    let (r, w) = anonymous_pipe()?;
    Ok((ChildIo::Fd(r), ChildIo::Fd(w)))
}

/// An anonymous pipe: (read end, write end), not inheritable.
fn anonymous_pipe() -> io::Result<(OwnedHandle, OwnedHandle)> {
    use windows_sys::Win32::System::Pipes::CreatePipe;
    let (mut r, mut w) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: both out-pointers are valid; a null security-attributes
    // pointer means non-inheritable handles.
    super::cvt(unsafe { CreatePipe(&mut r, &mut w, std::ptr::null(), PIPE_BUFFER) })?;
    Ok((owned(r)?, owned(w)?))
}

/// The parent's async end of an output pipe.
pub(crate) type PipeReceiver = NamedPipeServer;

/// The parent's async end of an input pipe. Shutting it down closes it,
/// which is what sends end of file to the child.
#[derive(Debug)]
pub(crate) struct PipeSender(Option<NamedPipeServer>);

/// Registers the parent's end of an output pipe (from [`child_io`]) with
/// the runtime.
pub(crate) fn pipe_receiver(fd: OwnedFd) -> io::Result<PipeReceiver> {
    // SAFETY: every parent end pkit makes is a named pipe server handle
    // opened for overlapped I/O (`named_pipe`); ownership passes to Tokio.
    unsafe { NamedPipeServer::from_raw_handle(fd.into_raw_handle()) }
}

/// Writes what fits of `bytes` into a child's input pipe at once, before
/// it is registered: here nothing (the pipe is an overlapped named pipe,
/// written through the runtime only); the caller's task writes it all.
/// `_held` (the child's stdin as spawned, which a Unix write keeps open)
/// is not used here.
pub(crate) fn write_now(
    _fd: &OwnedFd,
    _bytes: &[u8],
    _held: Option<&ChildIo>,
) -> io::Result<usize> {
    Ok(0)
}

/// Never resolves: a named pipe's reader that went is seen by a write
/// (the Unix side sees it without one).
pub(crate) async fn reader_gone(_: &PipeSender) {
    std::future::pending::<()>().await
}

/// Registers the parent's end of an input pipe with the runtime.
pub(crate) fn pipe_sender(fd: OwnedFd) -> io::Result<PipeSender> {
    Ok(PipeSender(Some(pipe_receiver(fd)?)))
}

impl AsyncWrite for PipeSender {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.as_mut() {
            Some(p) => Pin::new(p).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.as_mut() {
            Some(p) => Pin::new(p).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(p) = self.0.as_mut() {
            std::task::ready!(Pin::new(p).poll_flush(cx))?;
        }
        self.0 = None;
        Poll::Ready(Ok(()))
    }
}

/// Busy streams stay on the runtime here (the blocking hand-off reads
/// Unix descriptors).
pub(crate) const BLOCKING_HANDOFF: bool = false;

/// Never called ([`BLOCKING_HANDOFF`] is false).
pub(crate) fn receiver_into_fd(_rx: PipeReceiver) -> io::Result<OwnedFd> {
    Err(unsupported(
        "a blocking reader thread is not used on Windows",
    ))
}

/// Takes what is left in the pipe once reading must stop; returns whether
/// end of file was seen. Unlike a Unix pipe, a named pipe can't be read
/// "now, without waiting": its data reaches us through an overlapped read
/// the reactor completes later. So this reads on until end of file (the
/// usual case: the writers have exited, and what they wrote is all in the
/// pipe), until the pipe stays quiet for [`DRAIN_QUIET`] (a descendant
/// still holds its write end), or until [`DRAIN_BUDGET`] bytes (one that
/// keeps writing can't keep us here).
pub(crate) async fn drain_receiver(rx: &mut PipeReceiver, buf: &mut Vec<u8>) -> bool {
    drain_chunks(
        buf,
        || tokio::time::Instant::now() + DRAIN_QUIET,
        |cx, chunk| Pin::new(&mut *rx).poll_read(cx, chunk),
    )
    .await
}

/// See [`drain_receiver`].
const DRAIN_QUIET: std::time::Duration = std::time::Duration::from_millis(250);

/// How much a drain takes at most: one that keeps writing can't keep it
/// reading.
const DRAIN_BUDGET: usize = 1 << 20;

/// Reads what `poll_read` reads into `buf`, chunk by chunk, until its end
/// or an error (true), until a read is still waiting at the instant
/// `deadline` gives for it (false), or until [`DRAIN_BUDGET`] bytes
/// (false). A pipe's drain and a pseudo console's (`pty.rs`).
pub(super) async fn drain_chunks(
    buf: &mut Vec<u8>,
    mut deadline: impl FnMut() -> tokio::time::Instant,
    mut poll_read: impl FnMut(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>>,
) -> bool {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut taken = 0;
    while taken < DRAIN_BUDGET {
        let read = std::future::poll_fn(|cx| {
            let mut filled = ReadBuf::new(&mut chunk);
            std::task::ready!(poll_read(cx, &mut filled))?;
            Poll::Ready(Ok::<usize, io::Error>(filled.filled().len()))
        });
        match tokio::time::timeout_at(deadline(), read).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                taken += n;
            }
            Err(_) => return false,
        }
    }
    false
}

/// The pipe's size is fixed when it is made.
pub(crate) fn grow_receiver(_rx: &PipeReceiver) {}

/// What a named pipe holds reaches us through overlapped reads: it is not
/// counted (a line stream's consumer is owed, at the exit, what the reader
/// has queued when it looks; see the pump's `owed.rs`).
pub(crate) fn pipe_unread(_rx: &PipeReceiver) -> io::Result<u64> {
    Err(unsupported("a named pipe's unread bytes are not counted"))
}

/// Never called ([`BLOCKING_HANDOFF`] is false).
#[allow(clippy::ptr_arg)] // the Unix function's signature
pub(crate) fn read_or_stop(
    _data: BorrowedFd<'_>,
    _stop: BorrowedFd<'_>,
    _buf: &mut Vec<u8>,
    _max: usize,
) -> io::Result<ReadStep> {
    Err(unsupported(
        "a blocking reader thread is not used on Windows",
    ))
}

/// Never called ([`BLOCKING_HANDOFF`] is false).
#[allow(clippy::ptr_arg)] // the Unix function's signature
pub(crate) fn drain_pipe(_fd: BorrowedFd<'_>, _buf: &mut Vec<u8>) -> bool {
    true
}

/// A pipe whose closed write end wakes a reader (unused on Windows but for
/// its shape: see [`BLOCKING_HANDOFF`]).
pub(crate) fn stop_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    anonymous_pipe()
}
