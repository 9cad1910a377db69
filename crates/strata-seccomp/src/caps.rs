//! Capability names and numbers (`linux/capability.h`).

/// Capability names by number (`CAP_CHOWN` is 0).
pub const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Whether the capability `name` (`CAP_SYS_ADMIN`) is in `set` (a bit per
/// capability number). A name the kernel does not have is never in the set,
/// as in moby, which compares names with the container's bounding set.
pub(crate) fn has(set: u64, name: &str) -> bool {
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == name)
        .is_some_and(|bit| set & (1 << bit) != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers() {
        assert!(super::has(1 << 21, "CAP_SYS_ADMIN"));
        assert!(super::has(1 << 40, "CAP_CHECKPOINT_RESTORE"));
        assert!(super::has(1 << 34, "CAP_SYSLOG"));
        assert!(!super::has(u64::MAX, "CAP_NOPE"));
        assert!(!super::has(0, "CAP_CHOWN"));
    }
}
