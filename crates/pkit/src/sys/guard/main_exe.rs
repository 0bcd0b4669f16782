//! Whether an address lies in the main executable, on Linux: read from
//! the program headers the kernel hands every process (`AT_PHDR`,
//! `AT_PHNUM`), not through `dl_iterate_phdr`, which takes the dynamic
//! loader's lock: a copy forked while another thread of its maker was in
//! it (the maker's first run asking this very question) has that lock
//! held for ever, and its own first run waited for it until killed.

/// ELF's program header table's own entry, and a loadable segment.
const PT_PHDR: u32 = 6;
const PT_LOAD: u32 = 1;

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// Whether `addr` lies in a loadable segment of the main executable;
/// false when the kernel handed no program headers (or no `PT_PHDR`
/// entry, which gives the load address: then `addr` is not taken for the
/// executable's, and the caller does without what needs it).
pub(super) fn in_main_executable(addr: usize) -> bool {
    // Raw: getauxval is a C library call (rustix reads the vector
    // otherwise); no lock, no allocation.
    // SAFETY: plain queries of the auxiliary vector.
    let (at, count) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if at == 0 || count == 0 {
        return false;
    }
    // SAFETY: the kernel maps the executable's `count` program headers at
    // `at` for the process's life.
    let headers = unsafe { std::slice::from_raw_parts(at as *const Phdr, count) };
    let Some(table) = headers.iter().find(|h| h.p_type == PT_PHDR) else {
        return false;
    };
    let bias = at.wrapping_sub(table.p_vaddr as usize);
    headers.iter().filter(|h| h.p_type == PT_LOAD).any(|h| {
        let start = bias.wrapping_add(h.p_vaddr as usize);
        addr >= start && addr - start < h.p_memsz as usize
    })
}
