//! Whether an address lies in the main executable, on Linux: read from
//! the program headers the kernel hands every process (`AT_PHDR`,
//! `AT_PHNUM`), not through `dl_iterate_phdr`, which takes the dynamic
//! loader's lock: a copy forked while another thread of its maker was in
//! it (the maker's first run asking this very question) has that lock
//! held for ever, and its own first run waited for it until killed.

use std::mem::size_of;

/// ELF's program header table's own entry, a loadable segment and the
/// interpreter's name.
const PT_PHDR: u32 = 6;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "64")]
type Ehdr = libc::Elf64_Ehdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;
#[cfg(target_pointer_width = "32")]
type Ehdr = libc::Elf32_Ehdr;

/// Whether `addr` lies in a loadable segment of the main executable;
/// false when the kernel handed no program headers, or when their load
/// address can't be told (see [`load_bias`]): then `addr` is not taken for
/// the executable's, and the caller does without what needs it.
pub(super) fn in_main_executable(addr: usize) -> bool {
    let Some((headers, bias)) = main_program() else {
        return false;
    };
    headers.iter().filter(|h| h.p_type == PT_LOAD).any(|h| {
        let start = bias.wrapping_add(h.p_vaddr as usize);
        addr >= start && addr - start < h.p_memsz as usize
    })
}

/// The main executable's program headers and its load bias (what its
/// addresses are moved by: 0 for a non-PIE executable), as
/// `dl_iterate_phdr` reports its first object's.
fn main_program() -> Option<(&'static [Phdr], usize)> {
    let headers = program_headers()?;
    // Raw: getauxval is a C library call; no lock, no allocation.
    // SAFETY: plain queries of the auxiliary vector.
    let (entry, page) = unsafe {
        (
            libc::getauxval(libc::AT_ENTRY) as usize,
            libc::getauxval(libc::AT_PAGESZ) as usize,
        )
    };
    let bias = load_bias(headers, headers.as_ptr() as usize, entry, page)?;
    Some((headers, bias))
}

/// The main executable's program headers, as the kernel hands them (or,
/// when the dynamic loader was run as the program, as it rewrote
/// `AT_PHDR` for the program it loaded): `dl_iterate_phdr`'s first
/// object's.
fn program_headers() -> Option<&'static [Phdr]> {
    // Raw: getauxval is a C library call (rustix reads the vector
    // otherwise); no lock, no allocation.
    // SAFETY: plain queries of the auxiliary vector.
    let (at, count) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if at == 0 || count == 0 || at % std::mem::align_of::<Phdr>() != 0 {
        return None;
    }
    // SAFETY: the kernel (or the loader) maps the executable's `count`
    // program headers at `at` (aligned, checked above) for the process's
    // life.
    Some(unsafe { std::slice::from_raw_parts(at as *const Phdr, count) })
}

/// Whether this process was started by running its dynamic loader as the
/// program (`ld.so program args...`, as some bundlers and wrappers do):
/// the kernel then executed the loader, so `/proc/self/exe` names the
/// loader, which, run again with a child's argument vector, would load and
/// run that vector's second entry as a program. Told by the main program
/// asking for an interpreter (`PT_INTERP`) that the kernel did not load
/// (`AT_BASE` 0): glibc's loader rewrites `AT_PHDR` and `AT_EXECFN` for
/// the program it loads, not `AT_BASE`. A static program has no
/// interpreter. Read without `dl_iterate_phdr`, as above.
pub(super) fn started_by_its_loader() -> bool {
    let asks = program_headers().is_some_and(|h| h.iter().any(|h| h.p_type == PT_INTERP));
    // Raw: neither std nor rustix reads AT_BASE.
    // SAFETY: getauxval(3) reads this process's auxiliary vector.
    asks && unsafe { libc::getauxval(libc::AT_BASE) } == 0
}

/// The load bias of the executable whose `headers` are at `at`: from its
/// `PT_PHDR` entry (the table's own address, which the dynamic loader
/// relocates the executable by too). A static executable (GNU ld gives one
/// without an interpreter no `PT_PHDR`; a static PIE is moved, as Rust's
/// `crt-static` ones) is told by its ELF header instead, read just before
/// the headers when it is there (as linkers put it: `e_phoff` is the
/// header's size) on the same page (so mapped too): the header's address
/// less the `p_vaddr` of the segment that maps the file's start, checked
/// against the kernel's entry address (`AT_ENTRY` is the header's
/// `e_entry` moved by the bias). `None` when neither tells (no executable
/// laid out otherwise is known).
fn load_bias(headers: &[Phdr], at: usize, entry: usize, page: usize) -> Option<usize> {
    if let Some(table) = headers.iter().find(|h| h.p_type == PT_PHDR) {
        return Some(at.wrapping_sub(table.p_vaddr as usize));
    }
    let size = size_of::<Ehdr>();
    if page == 0 || at % page < size {
        return None;
    }
    let start = at - size;
    // SAFETY: `start` lies on the page the headers begin on, which is
    // mapped readable; `Ehdr`'s alignment is `Phdr`'s (checked at `at`,
    // and `size` is a multiple of it); only plain integers are read.
    let header = unsafe { std::ptr::read(start as *const Ehdr) };
    let same = header.e_ident[..4] == *b"\x7fELF"
        && header.e_phoff as usize == size
        && usize::from(header.e_phnum) == headers.len()
        && usize::from(header.e_phentsize) == size_of::<Phdr>();
    if !same {
        return None;
    }
    let first = headers
        .iter()
        .find(|h| h.p_type == PT_LOAD && h.p_offset == 0)?;
    let bias = start.wrapping_sub(first.p_vaddr as usize);
    (bias.wrapping_add(header.e_entry as usize) == entry).then_some(bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    /// What `dl_iterate_phdr` reports of its first object: its loadable
    /// segments (start, size), load bias, and whether it names an
    /// interpreter.
    type Reported = (Vec<(usize, usize)>, usize, bool);

    fn reported() -> Reported {
        unsafe extern "C" fn first(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut c_void,
        ) -> libc::c_int {
            // SAFETY: `data` is the tuple passed below; `info` and its
            // headers are valid during the callback.
            let (out, info) = unsafe { (&mut *data.cast::<Reported>(), &*info) };
            out.1 = info.dlpi_addr as usize;
            for i in 0..usize::from(info.dlpi_phnum) {
                // SAFETY: `dlpi_phdr` points at `dlpi_phnum` headers.
                let ph = unsafe { &*info.dlpi_phdr.add(i) };
                out.2 |= ph.p_type == PT_INTERP;
                if ph.p_type == PT_LOAD {
                    let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                    out.0.push((start, ph.p_memsz as usize));
                }
            }
            1
        }
        let mut out: Reported = (Vec::new(), 0, false);
        // SAFETY: the callback writes only `out`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(first), (&mut out as *mut Reported).cast()) };
        out
    }

    /// `dl_iterate_phdr`'s answer: whether `addr` lies in a loadable
    /// segment of its first object.
    fn by_loader(segments: &[(usize, usize)], addr: usize) -> bool {
        segments
            .iter()
            .any(|&(start, size)| addr >= start && addr - start < size)
    }

    /// The kernel's program headers give the loader's answer, for this
    /// test binary however it is linked: the same bias, and the same
    /// answer inside each segment, at and beside its edges, for a function
    /// of ours, a C library function, the heap, the stack and the ends of
    /// the address space; and whether it names an interpreter (so whether
    /// the loader was run as the program: true when this binary is run as
    /// `ld.so BINARY`). Here a PIE; built alone (a file with
    /// `#[path = ".../main_exe.rs"] mod main_exe;`, `rustc --test
    /// --extern libc=...`) with `-C relocation-model=static` (non-PIE),
    /// `-C target-feature=+crt-static` (static PIE), both (static), each
    /// also with `-C link-arg=-fuse-ld=bfd` (GNU ld: the static ones have
    /// no `PT_PHDR`), and run directly and through `ld.so`, it passed too.
    #[test]
    fn the_kernels_headers_answer_as_the_loader() {
        let (segments, bias, interp) = reported();
        assert!(!segments.is_empty());
        let (headers, ours) = main_program().expect("the main executable's headers and bias");
        assert_eq!(ours, bias, "load bias");
        let asks = headers.iter().any(|h| h.p_type == PT_INTERP);
        assert_eq!(asks, interp, "PT_INTERP");
        // SAFETY: reads the auxiliary vector.
        let run_by_loader = unsafe { libc::getauxval(libc::AT_BASE) } == 0 && interp;
        assert_eq!(started_by_its_loader(), run_by_loader);
        let heap = Box::new(7u64);
        let stack = 7u64;
        let mut addrs = vec![
            0,
            1,
            usize::MAX,
            the_kernels_headers_answer_as_the_loader as *const () as usize,
            in_main_executable as *const () as usize,
            libc::getpid as *const () as usize,
            libc::dl_iterate_phdr as *const () as usize,
            &*heap as *const u64 as usize,
            &stack as *const u64 as usize,
        ];
        for &(start, size) in &segments {
            let end = start.wrapping_add(size);
            addrs.extend([
                start.wrapping_sub(1),
                start,
                start + 1,
                start + size / 2,
                end.wrapping_sub(1),
                end,
                end + 1,
            ]);
        }
        for addr in addrs {
            assert_eq!(
                in_main_executable(addr),
                by_loader(&segments, addr),
                "{addr:#x} (segments {segments:x?}, bias {bias:#x})"
            );
        }
        assert!(in_main_executable(reported as *const () as usize));
        assert!(!in_main_executable(&*heap as *const u64 as usize));
    }
}
