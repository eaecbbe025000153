//! The seccomp filter bubblewrap installs on every command, as a raw classic-BPF program.
//!
//! Written by hand rather than with a filter compiler because it must also refuse the x32
//! system-call numbers on x86_64 (a compiler keyed by exact syscall numbers lets them through),
//! and because it is short enough to read whole:
//!
//! 1. a foreign architecture (e.g. 32-bit syscalls on x86_64) kills the process;
//! 2. x32 syscall numbers fail with `EPERM`;
//! 3. `ptrace`, `process_vm_readv/writev`, `io_uring_*`, `bpf`, `perf_event_open`,
//!    `userfaultfd`, the keyring calls, kernel modules, `kexec`, `mount` and friends fail with
//!    `EPERM`;
//! 4. `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` (typing into a terminal) fail with `EPERM`;
//! 5. `clone`/`unshare` with `CLONE_NEWUSER` fail with `EPERM` (and `clone3`, whose flags a
//!    filter cannot read, fails with `ENOSYS` so that libc falls back to `clone`, when
//!    bubblewrap cannot disable user namespaces itself);
//! 6. without network, `socket()` of any family but `AF_UNIX` fails with `EPERM`;
//! 7. everything else is allowed.
//!
//! Building the program allocates, so it happens in the parent; the child only receives a file
//! descriptor holding the bytes.

/// Whether this build can produce a filter for the machine it runs on.
pub(crate) const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    target_endian = "little",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Offsets in `struct seccomp_data`; argument words are read as their low 32 bits
// (little-endian only, see `SUPPORTED`).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0: u32 = 16;
const OFFSET_ARG1: u32 = 24;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: Option<u32> = Some(0x4000_0000);
#[cfg(not(target_arch = "x86_64"))]
const X32_SYSCALL_BIT: Option<u32> = None;

/// One classic-BPF instruction, laid out as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const fn stmt(code: u16, k: u32) -> Insn {
    Insn { code, jt: 0, jf: 0, k }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

/// What the filter allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FilterOptions {
    /// Allow sockets of every family.
    pub network: bool,
    /// bubblewrap disables user namespaces itself; otherwise the filter refuses `clone3`.
    pub bwrap_disables_userns: bool,
}

/// System calls that always fail with `EPERM` inside the sandbox.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied_syscalls() -> Vec<libc::c_long> {
    let mut list = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_open_by_handle_at,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
    ];
    list.sort_unstable();
    list
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn denied_syscalls() -> Vec<libc::c_long> {
    Vec::new()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod nr {
    pub(super) const IOCTL: libc::c_long = libc::SYS_ioctl;
    pub(super) const CLONE: libc::c_long = libc::SYS_clone;
    pub(super) const CLONE3: libc::c_long = libc::SYS_clone3;
    pub(super) const UNSHARE: libc::c_long = libc::SYS_unshare;
    pub(super) const SOCKET: libc::c_long = libc::SYS_socket;
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod nr {
    pub(super) const IOCTL: libc::c_long = -1;
    pub(super) const CLONE: libc::c_long = -1;
    pub(super) const CLONE3: libc::c_long = -1;
    pub(super) const UNSHARE: libc::c_long = -1;
    pub(super) const SOCKET: libc::c_long = -1;
}

fn program(options: FilterOptions) -> Vec<Insn> {
    let eperm = errno(libc::EPERM);
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
    ];
    if let Some(bit) = X32_SYSCALL_BIT {
        p.push(jump(BPF_JGE_K, bit, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    for syscall in denied_syscalls() {
        p.push(jump(BPF_JEQ_K, syscall as u32, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
    }
    if !options.bwrap_disables_userns {
        p.push(jump(BPF_JEQ_K, nr::CLONE3 as u32, 0, 1));
        p.push(stmt(BPF_RET_K, errno(libc::ENOSYS)));
    }
    // clone / unshare with CLONE_NEWUSER; both take the flags as their first argument on the
    // supported architectures. Each block ends in a return, so the syscall number need not be
    // reloaded.
    for syscall in [nr::CLONE, nr::UNSHARE] {
        p.push(jump(BPF_JEQ_K, syscall as u32, 0, 4));
        p.push(stmt(BPF_LD_W_ABS, OFFSET_ARG0));
        p.push(jump(BPF_JSET_K, libc::CLONE_NEWUSER as u32, 0, 1));
        p.push(stmt(BPF_RET_K, eperm));
        p.push(stmt(BPF_RET_K, RET_ALLOW));
    }
    // ioctl(fd, TIOCSTI | TIOCLINUX, ...)
    p.push(jump(BPF_JEQ_K, nr::IOCTL as u32, 0, 5));
    p.push(stmt(BPF_LD_W_ABS, OFFSET_ARG1));
    p.push(jump(BPF_JEQ_K, libc::TIOCSTI as u32, 2, 0));
    p.push(jump(BPF_JEQ_K, libc::TIOCLINUX as u32, 1, 0));
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, eperm));
    if !options.network {
        p.push(jump(BPF_JEQ_K, nr::SOCKET as u32, 0, 3));
        p.push(stmt(BPF_LD_W_ABS, OFFSET_ARG0));
        p.push(jump(BPF_JEQ_K, libc::AF_UNIX as u32, 1, 0));
        p.push(stmt(BPF_RET_K, eperm));
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

/// The filter as the bytes of a `struct sock_filter` array, what `bwrap --seccomp FD` reads.
pub(crate) fn compile(options: FilterOptions) -> Vec<u8> {
    let program = program(options);
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_options() -> [FilterOptions; 4] {
        [true, false]
            .map(|network| {
                [true, false].map(|u| FilterOptions { network, bwrap_disables_userns: u })
            })
            .concat()
            .try_into()
            .unwrap()
    }

    /// A tiny interpreter for the instructions the program uses, to check its decisions.
    fn run(program: &[Insn], arch: u32, nr: u32, arg0: u32, arg1: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = program[pc];
            match insn.code {
                BPF_LD_W_ABS => {
                    acc = match insn.k {
                        OFFSET_NR => nr,
                        OFFSET_ARCH => arch,
                        OFFSET_ARG0 => arg0,
                        OFFSET_ARG1 => arg1,
                        other => panic!("unexpected load offset {other}"),
                    };
                    pc += 1;
                }
                BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                    let taken = match insn.code {
                        BPF_JEQ_K => acc == insn.k,
                        BPF_JGE_K => acc >= insn.k,
                        _ => acc & insn.k != 0,
                    };
                    pc += 1 + usize::from(if taken { insn.jt } else { insn.jf });
                }
                BPF_RET_K => return insn.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn every_jump_lands_inside_the_program_and_every_path_returns() {
        for options in all_options() {
            let p = program(options);
            assert!(p.len() < 4096);
            assert_eq!(p.last().unwrap().code, BPF_RET_K);
            for (i, insn) in p.iter().enumerate() {
                if matches!(insn.code, BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K) {
                    assert!(i + 1 + usize::from(insn.jt) < p.len(), "jt of {i}");
                    assert!(i + 1 + usize::from(insn.jf) < p.len(), "jf of {i}");
                }
            }
            assert_eq!(compile(options).len(), p.len() * 8);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_filter_decides_as_documented() {
        let eperm = errno(libc::EPERM);
        let closed = program(FilterOptions { network: false, bwrap_disables_userns: true });
        let open = program(FilterOptions { network: true, bwrap_disables_userns: false });
        let call =
            |p: &[Insn], nr: libc::c_long, a0: u32, a1: u32| run(p, AUDIT_ARCH, nr as u32, a0, a1);

        assert_eq!(run(&closed, 3 | 0x4000_0000, 0, 0, 0), RET_KILL_PROCESS, "i386 ABI");
        assert_eq!(call(&closed, libc::SYS_socket | 0x4000_0000, 2, 0), eperm, "x32 ABI");
        assert_eq!(call(&closed, libc::SYS_ptrace, 0, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_io_uring_setup, 0, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_process_vm_readv, 0, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_socket, libc::AF_INET as u32, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_socket, libc::AF_INET6 as u32, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_socket, libc::AF_NETLINK as u32, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_socket, libc::AF_UNIX as u32, 0), RET_ALLOW);
        assert_eq!(call(&open, libc::SYS_socket, libc::AF_INET as u32, 0), RET_ALLOW);
        assert_eq!(call(&closed, libc::SYS_ioctl, 0, libc::TIOCSTI as u32), eperm);
        assert_eq!(call(&closed, libc::SYS_ioctl, 0, libc::TIOCGWINSZ as u32), RET_ALLOW);
        assert_eq!(call(&closed, libc::SYS_unshare, libc::CLONE_NEWUSER as u32, 0), eperm);
        assert_eq!(call(&closed, libc::SYS_clone, libc::SIGCHLD as u32, 0), RET_ALLOW);
        assert_eq!(call(&closed, libc::SYS_clone3, 0, 0), RET_ALLOW);
        assert_eq!(call(&open, libc::SYS_clone3, 0, 0), errno(libc::ENOSYS));
        assert_eq!(call(&closed, libc::SYS_read, 0, 0), RET_ALLOW);
        assert_eq!(call(&closed, libc::SYS_execve, 0, 0), RET_ALLOW);
    }
}
