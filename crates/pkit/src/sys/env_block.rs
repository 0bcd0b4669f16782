//! A child's environment on Unix as `execve` takes it, in two allocations:
//! every `NAME=value\0` entry back to back in one byte buffer, and the
//! null-terminated vector of pointers to them. (One C string per variable
//! was one allocation, and one free, per variable and per spawn: two
//! thirds of a one-shot run's user-space work, issue 20.)

use std::ffi::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The entries of a child's environment, ready for `execve`.
pub(crate) struct EnvBlock {
    /// Every entry followed by its NUL.
    bytes: Vec<u8>,
    /// A pointer to each entry's first byte in `bytes`, then a null
    /// pointer. `bytes` is never changed once these are set, so they stay
    /// valid for as long as the block lives (moving the block moves
    /// neither heap buffer).
    ptrs: Vec<*const c_char>,
}

// SAFETY: the pointers only point into the block's own heap buffer, which
// nothing mutates after `EnvBuilder::finish`; sharing or sending the block
// shares or sends read-only bytes it owns, as a `Vec<CString>` would.
unsafe impl Send for EnvBlock {}
// SAFETY: as for `Send`: `&EnvBlock` gives read-only access only.
unsafe impl Sync for EnvBlock {}

/// The two buffers of the last block dropped, emptied, for the next
/// block to fill (a pool of one): a one-shot run's copy of the environment
/// then allocates neither, and dropping its block after the spawn frees
/// no chunk into the allocator's top (glibc consolidates its fast bins
/// when it does: the copy's many small frees, issue 20). Taken and put
/// back with `try_lock` only: a contended pool is skipped, never waited
/// for (and never deadlocks a forked child).
static SPARE: Mutex<Option<Buffers>> = Mutex::new(None);

/// Buffers larger than this are freed rather than kept.
const SPARE_MAX_BYTES: usize = 256 << 10;

/// An emptied block's buffers.
struct Buffers {
    bytes: Vec<u8>,
    /// Always empty: no pointer is kept.
    ptrs: Vec<*const c_char>,
}

// SAFETY: `ptrs` is always empty (`Buffers` holds capacity only), so
// sending it sends no pointer; `bytes` is plain data.
unsafe impl Send for Buffers {}

impl EnvBlock {
    /// A builder for about `entries` entries of about `bytes` bytes in all
    /// (both only reserve room: more may be pushed).
    pub(crate) fn builder(entries: usize, bytes: usize) -> EnvBuilder {
        EnvBuilder {
            bytes: Vec::with_capacity(bytes),
            ptrs: Vec::with_capacity(entries + 1),
        }
    }

    /// [`builder`](Self::builder) on the pooled buffers of the last block
    /// dropped, when there are some and nobody else holds the pool.
    fn reusing(entries: usize, bytes: usize) -> EnvBuilder {
        let spare = SPARE.try_lock().ok().and_then(|mut s| s.take());
        let Some(Buffers {
            bytes: mut b,
            ptrs: mut p,
        }) = spare
        else {
            return EnvBlock::builder(entries, bytes);
        };
        debug_assert!(b.is_empty() && p.is_empty());
        b.reserve(bytes);
        p.reserve(entries + 1);
        EnvBuilder { bytes: b, ptrs: p }
    }

    /// The null-terminated `envp` vector (valid while `self` lives).
    pub(crate) fn pointers(&self) -> &[*const c_char] {
        &self.ptrs
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.ptrs.len() - 1
    }

    /// A pointer to each entry (without the final null).
    pub(crate) fn entry_pointers(&self) -> &[*const c_char] {
        &self.ptrs[..self.len()]
    }

    /// Each `NAME=value` entry, without its NUL, in order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &[u8]> {
        // No entry holds a NUL (`EnvBuilder`), so the NULs part them.
        self.bytes
            .split_inclusive(|&b| b == 0)
            .map(|e| &e[..e.len() - 1])
    }

    /// The bytes of all entries with their NULs.
    fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

impl Drop for EnvBlock {
    /// Puts the emptied buffers in the pool when it is free and they are
    /// not too large (`SPARE_MAX_BYTES`).
    fn drop(&mut self) {
        if self.bytes.capacity() > SPARE_MAX_BYTES || self.bytes.capacity() == 0 {
            return;
        }
        let Ok(mut spare) = SPARE.try_lock() else {
            return;
        };
        if spare.is_none() {
            let (mut bytes, mut ptrs) = (
                std::mem::take(&mut self.bytes),
                std::mem::take(&mut self.ptrs),
            );
            bytes.clear();
            ptrs.clear();
            *spare = Some(Buffers { bytes, ptrs });
        }
    }
}

impl Default for EnvBlock {
    /// No variable at all.
    fn default() -> EnvBlock {
        EnvBlock::builder(0, 0).finish()
    }
}

impl std::fmt::Debug for EnvBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries().map(String::from_utf8_lossy))
            .finish()
    }
}

/// An [`EnvBlock`] being filled.
pub(crate) struct EnvBuilder {
    bytes: Vec<u8>,
    /// Each entry's offset in `bytes` (as an address without provenance)
    /// until `finish` makes them pointers: `bytes` may still move.
    ptrs: Vec<*const c_char>,
}

impl EnvBuilder {
    /// Adds `name=value`; `false` (and nothing added) if either holds a
    /// NUL byte, which no C string can carry.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) -> bool {
        if memchr::memchr(0, name).is_some() || memchr::memchr(0, value).is_some() {
            return false;
        }
        self.push_unchecked(name, value);
        true
    }

    /// Adds a whole `NAME=value` entry that holds no NUL byte (one of
    /// this process's environment: a C string), as it is.
    fn push_entry(&mut self, entry: &[u8]) {
        debug_assert!(!entry.contains(&0));
        self.ptrs
            .push(std::ptr::without_provenance(self.bytes.len()));
        self.bytes.reserve(entry.len() + 1);
        self.bytes.extend_from_slice(entry);
        self.bytes.push(0);
    }

    /// Adds `name=value` from strings that hold no NUL byte: a variable
    /// of this process's environment (C strings) as [`derived_env`] hands it.
    pub(crate) fn push_unchecked(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(!name.contains(&0) && !value.contains(&0));
        self.ptrs
            .push(std::ptr::without_provenance(self.bytes.len()));
        self.bytes.reserve(name.len() + value.len() + 2);
        self.bytes.extend_from_slice(name);
        self.bytes.push(b'=');
        self.bytes.extend_from_slice(value);
        self.bytes.push(0);
    }

    /// The block: the offsets become pointers into the buffer, which no
    /// longer changes.
    pub(crate) fn finish(mut self) -> EnvBlock {
        let base = self.bytes.as_ptr().cast::<c_char>();
        for p in &mut self.ptrs {
            *p = base.wrapping_add(p.addr());
        }
        self.ptrs.push(std::ptr::null());
        EnvBlock {
            bytes: self.bytes,
            ptrs: self.ptrs,
        }
    }
}

/// The size and the number of entries of the last inherited environment
/// copied: the next copy reserves that much at once (the environment
/// rarely changes), rather than growing its buffers as it goes.
static LAST_INHERITED: (AtomicUsize, AtomicUsize) = (AtomicUsize::new(0), AtomicUsize::new(0));

/// A copy of this process's environment, made now, entries in this
/// process's order (see `sys::inherited_env`): by default under std's
/// environment lock (`vars_os`), so a `set_var` on another thread waits;
/// once the program opted in (`pkit::read_environment_unlocked`), each
/// entry copied as it is from `environ` into the block's one buffer, no
/// allocation per variable (`vars_os` makes two strings per variable,
/// issue 20), the same entries as `vars_os` yields.
pub(crate) fn inherited() -> EnvBlock {
    let mut block = sized_as_inherited();
    if super::env_read::unlocked() {
        // SAFETY: the program opted in: its `read_environment_unlocked`
        // promised that no thread changes the environment from then on.
        unsafe { each_variable_unlocked(|entry| block.push_entry(entry)) };
    } else {
        each_name_value(|name, value| block.push_unchecked(name, value));
    }
    let block = block.finish();
    let (bytes, entries) = &LAST_INHERITED;
    bytes.store(block.byte_len(), Ordering::Relaxed);
    entries.store(block.len(), Ordering::Relaxed);
    block
}

/// A builder on the pooled buffers with room for the last inherited copy.
fn sized_as_inherited() -> EnvBuilder {
    let (bytes, entries) = &LAST_INHERITED;
    EnvBlock::reusing(
        entries.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    )
}

/// A child's environment made from this process's, read as [`inherited`]
/// reads it (under std's lock by default, straight from `environ` once
/// the program opted in) and straight into the block: `each` is handed
/// every variable's name and value, in order, and adds to the block what
/// the child gets of it ([`EnvBuilder::push_unchecked`] to keep it as
/// it is, [`EnvBuilder::push`] to change it, nothing to leave it out).
/// `clear`: nothing is read (an empty builder). The caller adds what
/// follows, then finishes the block. No allocation per variable once the
/// program opted in (`vars_os` makes two strings per variable).
pub(crate) fn derived_env(
    clear: bool,
    mut each: impl FnMut(&[u8], &[u8], &mut EnvBuilder),
) -> EnvBuilder {
    let mut block = sized_as_inherited();
    if !clear {
        each_name_value(|name, value| each(name, value, &mut block));
    }
    block
}

/// Calls `f` with each variable of this process's environment as its name
/// and value (no NUL in either), in the environment's order, as
/// `inherited` reads them: by default under std's lock (`vars_os`), once
/// the program opted in straight from `environ`, an entry's name up to its
/// first `=` after the first byte (as `vars_os` parts it).
fn each_name_value(mut f: impl FnMut(&[u8], &[u8])) {
    if super::env_read::unlocked() {
        // SAFETY: as in `inherited`: the program's promise.
        unsafe {
            each_variable_unlocked(|entry| {
                // Every entry passed on has one (`is_variable`).
                if let Some(i) = memchr::memchr(b'=', &entry[1..]) {
                    f(&entry[..=i], &entry[i + 2..]);
                }
            })
        };
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    for (name, value) in std::env::vars_os() {
        // Names and values were C strings: no NUL to look for.
        f(name.as_bytes(), value.as_bytes());
    }
}

/// Calls `f` with each variable of this process's environment as its
/// `NAME=value` bytes (no NUL), in the environment's order, as `inherited`
/// reads them: by default under std's lock (`vars_os`, each entry put
/// together in one reused buffer), once the program opted in straight from
/// `environ` (`each_variable_unlocked`).
pub(crate) fn each_variable(mut f: impl FnMut(&[u8])) {
    if super::env_read::unlocked() {
        // SAFETY: as in `inherited`: the program's promise.
        unsafe { each_variable_unlocked(f) };
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let mut entry = Vec::new();
    for (name, value) in std::env::vars_os() {
        entry.clear();
        entry.extend_from_slice(name.as_bytes());
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        f(&entry);
    }
}

/// Calls `f` with each variable of this process's environment as its
/// `NAME=value` bytes (no NUL), in the environment's order, read where the
/// C library's `getenv` reads it (`environ`). The entries are those std's
/// `vars_os` yields, duplicates included: an empty entry, or one with no
/// `=` after its first byte, is skipped (a name is never empty, so one
/// may start with `=`: `=a=b` is `=a` set to `b`).
///
/// # Safety
///
/// No lock is taken (std's environment lock is private): no thread may
/// change the environment (`set_var`, `remove_var`, `setenv`, `putenv`,
/// `unsetenv`) while this runs, the promise of
/// `pkit::read_environment_unlocked`'s caller. `f` must not change it.
unsafe fn each_variable_unlocked(mut f: impl FnMut(&[u8])) {
    let mut at = environ();
    if at.is_null() {
        return;
    }
    loop {
        // SAFETY: `environ` is the C library's null-terminated vector of
        // NUL-terminated strings; `at` points at one of its slots, up to
        // and including the final null (we stop there). The vector and
        // its strings stay as they are while we read them: they change
        // only through `std::env::set_var`/`remove_var` or the C
        // library's `setenv`/`unsetenv`/`putenv`, and our caller
        // guarantees none runs meanwhile (see # Safety), as libc's
        // `getenv` (which takes no lock either) relies on it. `f`, ours,
        // changes nothing.
        let entry = unsafe {
            let p = *at;
            if p.is_null() {
                return;
            }
            at = at.add(1);
            std::ffi::CStr::from_ptr(p).to_bytes()
        };
        if is_variable(entry) {
            f(entry);
        }
    }
}

/// Whether std's `vars_os` reads an environment entry as a variable (the
/// strategy it copied from glibc): a name is never empty, so the `=` is
/// looked for from the second byte on; an entry without one is skipped.
fn is_variable(entry: &[u8]) -> bool {
    entry.len() > 1 && memchr::memchr(b'=', &entry[1..]).is_some()
}

/// The C library's environment vector, this process's.
fn environ() -> *const *const c_char {
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY: `_NSGetEnviron` takes nothing and returns the address
        // of the process's `environ` variable, always valid.
        unsafe { *libc::_NSGetEnviron() as *const *const c_char }
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        extern "C" {
            // Mutable: `setenv` and `putenv` may replace the vector.
            static mut environ: *const *const c_char;
        }
        // SAFETY: a copy of the C library's `environ` pointer (a plain,
        // always valid global; see `each_variable_unlocked` for what it points to
        // and why nothing changes it while we read).
        unsafe { std::ptr::addr_of!(environ).read() }
    }
}

/// Exactly `vars`' entries; `None` if a name or value holds a NUL byte
/// (tests': see `fdio::exact_env`).
#[cfg(test)]
pub(crate) fn exact<K, V>(vars: &[(K, V)]) -> Option<EnvBlock>
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    use std::os::unix::ffi::OsStrExt;
    let bytes = vars
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut block = EnvBlock::reusing(vars.len(), bytes);
    for (k, v) in vars {
        if !block.push(k.as_ref().as_bytes(), v.as_ref().as_bytes()) {
            return None;
        }
    }
    Some(block.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn strings(block: &EnvBlock) -> Vec<Vec<u8>> {
        block.entries().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn pointers_name_each_entry_and_end_with_null() {
        let mut b = EnvBlock::builder(0, 0);
        // More than the reserved room: the buffer moves while filled.
        for i in 0..200 {
            assert!(b.push(format!("V{i}").as_bytes(), &vec![b'x'; i]));
        }
        assert!(b.push(b"EMPTY", b""));
        assert!(b.push(b"\xff\xfe", b"\x80="));
        let block = b.finish();
        assert_eq!(block.len(), 202);
        let ptrs = block.pointers();
        assert_eq!(ptrs.len(), 203);
        assert!(ptrs[202].is_null());
        let via_ptrs: Vec<Vec<u8>> = ptrs[..202]
            .iter()
            // SAFETY: each pointer names a NUL-terminated entry of `block`,
            // alive for this scope.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
            .collect();
        assert_eq!(via_ptrs, strings(&block));
        assert_eq!(via_ptrs[5], b"V5=xxxxx");
        assert_eq!(via_ptrs[200], b"EMPTY=");
        assert_eq!(via_ptrs[201], b"\xff\xfe=\x80=");
        // Moving the block keeps its pointers valid (its buffers stay).
        let moved = Box::new(block);
        // SAFETY: as above.
        let last = unsafe { CStr::from_ptr(moved.pointers()[201]) };
        assert_eq!(last.to_bytes(), b"\xff\xfe=\x80=");
    }

    /// Each entry read through its pointer, as `execve` reads them.
    fn via_pointers(block: &EnvBlock) -> Vec<Vec<u8>> {
        assert!(block.pointers()[block.len()].is_null());
        block
            .entry_pointers()
            .iter()
            // SAFETY: each pointer names a NUL-terminated entry of
            // `block`, alive for this scope.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
            .collect()
    }

    #[test]
    fn a_block_on_reused_buffers_holds_only_its_own_entries() {
        // A large block dropped (its buffers pooled, unless another test
        // holds the pool), then smaller ones built, perhaps on them: each
        // has exactly its entries, and its pointers name them.
        for round in 0..20 {
            let big: Vec<(String, String)> = (0..100)
                .map(|i| (format!("BIG{i}"), "v".repeat(i + round)))
                .collect();
            let block = exact(&big).unwrap();
            assert_eq!(block.len(), 100);
            drop(block);
            let small = exact(&[("A", "1"), ("B", "")]).unwrap();
            assert_eq!(strings(&small), vec![b"A=1".to_vec(), b"B=".to_vec()]);
            assert_eq!(via_pointers(&small), strings(&small));
            drop(small);
            let ours = inherited();
            assert_eq!(via_pointers(&ours), strings(&ours));
            assert_eq!(ours.len(), std::env::vars_os().count());
            let refused = exact(&[("C", "3"), ("D", "a\0b")]);
            assert!(refused.is_none());
            let empty = exact::<&str, &str>(&[]).unwrap();
            assert_eq!(empty.len(), 0);
            assert_eq!(empty.pointers(), &[std::ptr::null()]);
        }
    }

    #[test]
    fn a_nul_byte_is_refused_and_adds_nothing() {
        let mut b = EnvBlock::builder(2, 16);
        assert!(!b.push(b"A\0B", b"1"));
        assert!(!b.push(b"A", b"1\0"));
        assert!(b.push(b"A", b"1"));
        assert_eq!(strings(&b.finish()), vec![b"A=1".to_vec()]);
        assert!(exact(&[("X", "1"), ("Y", "a\0b")]).is_none());
    }

    #[test]
    fn empty_blocks_are_a_lone_null() {
        let block = EnvBlock::default();
        assert_eq!(block.len(), 0);
        assert_eq!(block.pointers(), &[std::ptr::null()]);
        assert_eq!(block.entries().count(), 0);
    }

    #[test]
    fn the_path_searched_is_the_first_path_entry_of_the_copy() {
        use std::ffi::OsStr;
        let env = |vars: &[(&str, &str)]| crate::sys::ChildEnv::Exactly(exact(vars).unwrap());
        let both = env(&[
            ("XPATH", "/x"),
            ("PATHX", "/y"),
            ("PATH", "/a:/b"),
            ("PATH", "/c"),
        ]);
        assert_eq!(
            both.inherited_path_var().as_deref(),
            Some(OsStr::new("/a:/b"))
        );
        assert_eq!(env(&[("HOME", "/h")]).inherited_path_var(), None);
        let empty = env(&[("PATH", "")]);
        assert_eq!(empty.inherited_path_var().as_deref(), Some(OsStr::new("")));
        // In the copy of this process's environment: the value std reads.
        let ours = crate::sys::inherited_env();
        let path = ours.inherited_path_var().map(|p| p.into_owned());
        assert_eq!(path, std::env::var_os("PATH"));
    }

    #[test]
    fn entries_are_variables_as_vars_os_reads_them() {
        for yes in [&b"A=1"[..], b"A=", b"==", b"=A=1", b"A==", b"\xff=\x80"] {
            assert!(is_variable(yes), "{yes:?}");
        }
        for no in [&b""[..], b"=", b"A", b"=A", b"ABC"] {
            assert!(!is_variable(no), "{no:?}");
        }
    }

    #[test]
    fn a_derived_block_holds_what_its_caller_added() {
        let all = derived_env(false, |n, v, b| b.push_unchecked(n, v)).finish();
        assert_eq!(strings(&all), strings(&inherited()));
        let mut path = derived_env(false, |n, v, b| {
            if n == b"PATH" {
                assert!(b.push(n, b"/over"));
                b.push_unchecked(b"OLD_PATH", v);
            }
        });
        assert!(path.push(b"NEW", b"1"));
        let path = path.finish();
        let want = match std::env::var("PATH") {
            Ok(p) => vec![b"PATH=/over".to_vec(), format!("OLD_PATH={p}").into_bytes()],
            Err(_) => vec![],
        };
        assert_eq!(strings(&path), [want, vec![b"NEW=1".to_vec()]].concat());
        let cleared = derived_env(true, |_, _, _| panic!("cleared: nothing read"));
        assert_eq!(cleared.finish().len(), 0);
    }

    #[test]
    fn the_inherited_copy_is_this_process_environment() {
        use std::os::unix::ffi::OsStrExt;
        let block = inherited();
        let expected: Vec<Vec<u8>> = std::env::vars_os()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect();
        assert_eq!(strings(&block), expected);
        // A second copy reserves the first's size and is the same.
        let again = inherited();
        assert_eq!(strings(&again), expected);
    }
}
