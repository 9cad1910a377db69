//! Resource limits written into real cgroups, and removed with them.

mod common;

use common::{name, setup};
use strata_cgroup::{Cgroup, Controller, DeviceBackend, LeafKind, Limits, default_device_rules};

#[test]
fn limits_are_written_and_removed() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    let limits = Limits {
        memory: Some(32 << 20),
        memory_swap: Some(64 << 20),
        cpu_quota: Some((50_000, 100_000)),
        cpu_shares: Some(512),
        pids: Some(10),
        accounting: true,
    };
    let n = name("limits");
    let cg = match Cgroup::create_with_limits(&opts, &n, &default_device_rules(), &limits) {
        Ok(cg) => cg,
        Err(strata_cgroup::CgroupError::Unsupported(e)) => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let read = |kind: LeafKind, file: &str| -> Option<String> {
        let (_, dir) = cg.paths().into_iter().find(|(k, _)| *k == kind)?;
        Some(std::fs::read_to_string(dir.join(file)).unwrap().trim().to_string())
    };
    if opts.v1.get(Controller::Memory).is_some() {
        assert_eq!(read(LeafKind::MemoryV1, "memory.limit_in_bytes").unwrap(), "33554432");
        assert_eq!(read(LeafKind::CpuV1, "cpu.cfs_quota_us").unwrap(), "50000");
        assert_eq!(read(LeafKind::CpuV1, "cpu.shares").unwrap(), "512");
        assert_eq!(read(LeafKind::PidsV1, "pids.max").unwrap(), "10");
    } else {
        assert_eq!(read(LeafKind::Unified, "memory.max").unwrap(), "33554432");
        assert_eq!(read(LeafKind::Unified, "cpu.max").unwrap(), "50000 100000");
        assert_eq!(read(LeafKind::Unified, "pids.max").unwrap(), "10");
    }
    assert_eq!(cg.oom_kills(), Some(0));
    let usage = cg.usage();
    assert_eq!(usage.memory_limit, Some(32 << 20));
    if opts.v1.blkio.is_some() {
        assert_eq!((usage.io_read, usage.io_write), (Some(0), Some(0)));
    }
    assert_eq!(usage.pids, Some(0));
    assert!(usage.cpu_ns.is_some() && usage.memory.is_some(), "{usage:?}");
    let dirs: Vec<_> = cg.paths().iter().map(|(_, p)| p.to_path_buf()).collect();
    let reopened = Cgroup::open_with(&opts, &n).unwrap();
    assert_eq!(reopened.paths().len(), dirs.len());
    drop(reopened);
    cg.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{}", d.display());
    }
}
