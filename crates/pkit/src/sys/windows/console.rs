//! A ConPTY pseudo console: the three calls (looked up at run time, so
//! that a program using pkit still starts on a Windows older than ConPTY,
//! 10 version 1809), and one console's handle, size and close.

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::{Arc, Mutex, OnceLock};

use windows_sys::core::HRESULT;
use windows_sys::Win32::Foundation::{E_INVALIDARG, E_NOTIMPL, HANDLE};
use windows_sys::Win32::System::Console::{COORD, HPCON};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};

use super::super::fault::Point;
use super::unsupported;

type CreateFn = unsafe extern "system" fn(COORD, HANDLE, HANDLE, u32, *mut HPCON) -> HRESULT;
type ResizeFn = unsafe extern "system" fn(HPCON, COORD) -> HRESULT;
type CloseFn = unsafe extern "system" fn(HPCON);

/// `CreatePseudoConsole`, `ResizePseudoConsole`, `ClosePseudoConsole`.
pub(super) struct Api {
    create: CreateFn,
    resize: ResizeFn,
    close: CloseFn,
}

/// The ConPTY calls, if this Windows has them.
pub(super) fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(load).as_ref()
}

fn load() -> Option<Api> {
    let name = super::wide(std::ffi::OsStr::new("kernel32.dll"));
    // SAFETY: a NUL-terminated name; kernel32 is loaded in every process
    // and never unloaded, so the module and its functions stay valid.
    let module = unsafe { GetModuleHandleW(name.as_ptr()) };
    if module.is_null() {
        return None;
    }
    // SAFETY: a valid module and NUL-terminated ASCII names.
    let find = |name: &[u8]| unsafe { GetProcAddress(module, name.as_ptr()) };
    let (create, resize, close) = (
        find(b"CreatePseudoConsole\0")?,
        find(b"ResizePseudoConsole\0")?,
        find(b"ClosePseudoConsole\0")?,
    );
    // SAFETY: these exports have these signatures (wincon.h); a function
    // pointer is converted to another function pointer type of the same size.
    unsafe {
        Some(Api {
            create: std::mem::transmute::<unsafe extern "system" fn() -> isize, CreateFn>(create),
            resize: std::mem::transmute::<unsafe extern "system" fn() -> isize, ResizeFn>(resize),
            close: std::mem::transmute::<unsafe extern "system" fn() -> isize, CloseFn>(close),
        })
    }
}

/// An error for a failed `HRESULT`.
fn hresult_error(hr: HRESULT) -> io::Error {
    io::Error::from_raw_os_error(hr)
}

/// How many times a console's creation is tried, [`CREATE_RETRY_PAUSE`]
/// apart, unless its arguments were refused. Wine's `CreatePseudoConsole`
/// fails now and then on a loaded machine (`HRESULT` 0x80070001,
/// `ERROR_INVALID_FUNCTION`: the last error its own cleanup left, not the
/// cause) and succeeds when called again.
const CREATE_TRIES: u32 = 3;
/// The pause between two tries of a console's creation.
const CREATE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// A pseudo console, open until the program on it exits (or it is dropped
/// unused).
pub(crate) struct Console {
    state: Mutex<State>,
}

/// A console's handle and size, under one lock.
struct State {
    /// The pseudo console, until it is closed.
    handle: Option<HPCON>,
    /// The size last set: (rows, cols). Windows can't be asked.
    size: (u16, u16),
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// Creates a pseudo console of `rows` x `cols` that reads what is
    /// typed from `input` and writes its output into `output` (the host
    /// gets its own copies of both pipe ends).
    pub(super) fn create(
        rows: u16,
        cols: u16,
        input: &OwnedHandle,
        output: &OwnedHandle,
    ) -> io::Result<Console> {
        let api = api().ok_or_else(|| unsupported("this Windows has no ConPTY"))?;
        let size = coord(rows, cols)?;
        let mut hpc: HPCON = 0;
        let mut tries = 0;
        loop {
            let hr = match super::super::fault::check(Point::ConsoleCreate) {
                Err(injected) => injected,
                // SAFETY: valid pipe handles and a valid out-pointer.
                Ok(()) => unsafe {
                    (api.create)(
                        size,
                        input.as_raw_handle(),
                        output.as_raw_handle(),
                        0,
                        &mut hpc,
                    )
                },
            };
            if hr >= 0 {
                break;
            }
            tries += 1;
            if hr == E_INVALIDARG || tries == CREATE_TRIES {
                return Err(hresult_error(hr));
            }
            std::thread::sleep(CREATE_RETRY_PAUSE);
        }
        Ok(Console {
            state: Mutex::new(State {
                handle: Some(hpc),
                size: (rows, cols),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The size last set: (rows, cols). Windows can't be asked.
    pub(super) fn size(&self) -> (u16, u16) {
        self.state().size
    }

    /// The pseudo console, while it is open.
    pub(super) fn handle(&self) -> Option<HPCON> {
        self.state().handle
    }

    pub(super) fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let api = api().ok_or_else(|| unsupported("this Windows has no ConPTY"))?;
        let mut state = self.state();
        let Some(hpc) = state.handle else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the session's console is closed (its program exited)",
            ));
        };
        // SAFETY: an open pseudo console (the lock keeps it from being
        // closed meanwhile).
        let hr = unsafe { (api.resize)(hpc, coord(rows, cols)?) };
        if hr == E_NOTIMPL {
            // Wine 8 has ConPTY but no resize.
            return Err(unsupported(
                "this Windows does not implement ResizePseudoConsole (Wine 8 does not)",
            ));
        }
        if hr < 0 {
            return Err(hresult_error(hr));
        }
        state.size = (rows, cols);
        Ok(())
    }

    /// Closes the console, once: its host writes what it still has into
    /// the output pipe, ends every process still attached, and exits
    /// (which ends the output pipe). May wait for the host to exit.
    pub(super) fn close(&self) {
        let taken = self.state().handle.take();
        if let Some(hpc) = taken {
            close_console(hpc);
        }
    }
}

/// Closes an open pseudo console (taken out of its [`Console`]).
fn close_console(hpc: HPCON) {
    if let Some(api) = api() {
        // SAFETY: an open pseudo console, taken out of its `Console` so
        // that it is closed once.
        unsafe { (api.close)(hpc) };
    }
}

impl Drop for Console {
    /// A console never used (the start failed): closed on a thread of its
    /// own, as the close may wait for the host.
    fn drop(&mut self) {
        let Some(hpc) = self
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .handle
            .take()
        else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("pkit-conpty-close".into())
            .spawn(move || close_console(hpc));
        if spawned.is_err() {
            close_console(hpc);
        }
    }
}

/// A console's size as Windows takes it.
fn coord(rows: u16, cols: u16) -> io::Result<COORD> {
    let (Ok(y), Ok(x)) = (i16::try_from(rows), i16::try_from(cols)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Windows console has at most 32767 rows and columns",
        ));
    };
    Ok(COORD { X: x, Y: y })
}

/// Closes `console` when `process` exits (a thread that waits for it).
pub(super) fn close_at_exit(console: Arc<Console>, process: OwnedHandle) -> io::Result<()> {
    std::thread::Builder::new()
        .name("pkit-conpty".into())
        .spawn(move || {
            // SAFETY: a process handle owned by this thread.
            unsafe { WaitForSingleObject(process.as_raw_handle(), INFINITE) };
            console.close();
        })?;
    Ok(())
}
