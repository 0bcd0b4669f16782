//! The clone3 entry shim: makes the system call, and in the child (on its
//! new stack) calls `entry(arg)` instead of returning. Returns the child's
//! pid, or `-errno`, in the parent.

use std::ffi::{c_int, c_void};

/// `struct clone_args` (linux/sched.h), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub(super) flags: u64,
    pub(super) pidfd: u64,
    pub(super) child_tid: u64,
    pub(super) parent_tid: u64,
    pub(super) exit_signal: u64,
    pub(super) stack: u64,
    pub(super) stack_size: u64,
    pub(super) tls: u64,
    pub(super) set_tid: u64,
    pub(super) set_tid_size: u64,
    pub(super) cgroup: u64,
}

type Entry = extern "C" fn(*mut c_void) -> c_int;

/// Whether `errno` from a `clone3` means the call itself is refused here
/// (no clone3, a seccomp filter, an older kernel's shorter `clone_args` or
/// unknown flags), so that nothing was cloned and an older clone is to be
/// used, rather than the clone failing.
pub(crate) fn refused(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EOPNOTSUPP | libc::EINVAL
    )
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const AVAILABLE: bool = true;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const AVAILABLE: bool = false;

// x86_64: the syscall instruction clobbers rcx and r11 only, and the
// child starts with the parent's other registers (rax = 0, rsp = the new
// stack's top), so entry and arg travel in r8 and r9.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .text.pkit_clone3_vfork_shim,\"ax\",@progbits",
    ".globl pkit_clone3_vfork_shim_0_1",
    ".hidden pkit_clone3_vfork_shim_0_1",
    ".type pkit_clone3_vfork_shim_0_1,@function",
    "pkit_clone3_vfork_shim_0_1:",
    "mov r8, rdx",
    "mov r9, rcx",
    "mov eax, 435",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    "xor ebp, ebp",
    "and rsp, -16",
    "mov rdi, r9",
    "call r8",
    "ud2",
    "2:",
    "ret",
    ".size pkit_clone3_vfork_shim_0_1, .-pkit_clone3_vfork_shim_0_1",
    ".popsection",
);

// aarch64: `svc` preserves every register but x0, so entry and arg
// travel in x9 and x10; the kernel sets sp to the new stack's top.
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".pushsection .text.pkit_clone3_vfork_shim,\"ax\",@progbits",
    ".globl pkit_clone3_vfork_shim_0_1",
    ".hidden pkit_clone3_vfork_shim_0_1",
    ".type pkit_clone3_vfork_shim_0_1,%function",
    "pkit_clone3_vfork_shim_0_1:",
    "mov x9, x2",
    "mov x10, x3",
    "mov x8, #435",
    "svc #0",
    "cbnz x0, 2f",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, x10",
    "blr x9",
    "brk #0x1",
    "2:",
    "ret",
    ".size pkit_clone3_vfork_shim_0_1, .-pkit_clone3_vfork_shim_0_1",
    ".popsection",
);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
extern "C" {
    fn pkit_clone3_vfork_shim_0_1(
        args: *mut CloneArgs,
        size: usize,
        entry: Entry,
        arg: *mut c_void,
    ) -> isize;
}

/// # Safety
/// `args` must describe a clone with its own stack; `entry(arg)` runs in
/// the child and must never return.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) unsafe fn clone3(
    args: *mut CloneArgs,
    size: usize,
    entry: Entry,
    arg: *mut c_void,
) -> isize {
    pkit_clone3_vfork_shim_0_1(args, size, entry, arg)
}

/// # Safety
/// Never called: `AVAILABLE` is false on this architecture.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn clone3(_: *mut CloneArgs, _: usize, _: Entry, _: *mut c_void) -> isize {
    -(libc::ENOSYS as isize)
}
