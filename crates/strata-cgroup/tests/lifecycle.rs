//! Create, open, join, remove and stale cleanup of real cgroups.

mod common;

use std::path::PathBuf;

use common::{Sleeper, name, setup};
use strata_cgroup::{
    Cgroup, CgroupError, DeviceBackend, DeviceRule, Hierarchy, LeafKind, Options, default_device_rules,
};

fn dirs(cg: &Cgroup) -> Vec<PathBuf> {
    cg.paths().iter().map(|(_, p)| p.to_path_buf()).collect()
}

#[test]
fn layout_per_backend() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    let cg = Cgroup::create_with(&opts, &name("layout"), &default_device_rules()).unwrap();
    let kinds: Vec<LeafKind> = cg.paths().iter().map(|p| p.0).collect();
    match &opts.hierarchy {
        // Hybrid: v1 devices enforce, the cgroup2 leaf tracks processes.
        Hierarchy::Hybrid { devices, unified } => {
            assert_eq!(kinds, [LeafKind::DevicesV1, LeafKind::Unified]);
            assert_eq!(dirs(&cg)[0], devices.join("strata").join(name("layout")));
            assert_eq!(dirs(&cg)[1], unified.join("strata").join(name("layout")));
        }
        Hierarchy::Legacy { .. } => assert_eq!(kinds, [LeafKind::DevicesV1]),
        Hierarchy::Unified { .. } => assert_eq!(kinds, [LeafKind::Unified]),
    }
    cg.remove().unwrap();
}

#[test]
fn create_refuses_bad_names_and_duplicates() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    for bad in ["", "..", "../escape", "a/b", ".x"] {
        assert!(matches!(
            Cgroup::create_with(&opts, bad, &[]),
            Err(CgroupError::InvalidName { .. })
        ));
        assert!(matches!(
            Cgroup::open_with(&opts, bad),
            Err(CgroupError::InvalidName { .. })
        ));
    }
    let cg = Cgroup::create_with(&opts, &name("dup"), &[]).unwrap();
    assert!(matches!(
        Cgroup::create_with(&opts, &name("dup"), &[]),
        Err(CgroupError::Exists(_))
    ));
    // The failed create left the first one alone.
    for dir in dirs(&cg) {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    cg.remove().unwrap();
    assert!(matches!(
        Cgroup::open_with(&opts, &name("dup")),
        Err(CgroupError::NotFound(_))
    ));
}

#[test]
fn open_joins_existing_and_remove_waits_for_processes() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    let n = name("busy");
    let cg = Cgroup::create_with(&opts, &n, &default_device_rules()).unwrap();
    let paths = dirs(&cg);
    let first = Sleeper::start(cg.join_handle());

    // As `exec` does: open the running container's cgroup and join it.
    let opened = Cgroup::open_with(&opts, &n).unwrap();
    assert_eq!(dirs(&opened), paths);
    let second = Sleeper::start(opened.join_handle());
    let mut pids = cg.pids().unwrap();
    pids.sort();
    let mut want = vec![first.pid, second.pid];
    want.sort();
    assert_eq!(pids, want);
    // Every hierarchy has them.
    for dir in &paths {
        let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert_eq!(text.lines().count(), 2, "{}", dir.display());
    }

    // Busy while they live; then removable.
    assert!(matches!(opened.remove(), Err(CgroupError::Busy(_))));
    for dir in &paths {
        assert!(dir.is_dir());
    }
    drop(first);
    drop(second);
    Cgroup::open_with(&opts, &n).unwrap().remove().unwrap();
    for dir in &paths {
        assert!(!dir.exists(), "{}", dir.display());
    }
    drop(cg); // only closes fds
}

#[test]
fn add_process_and_remove_moves_the_caller_out() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    let n = name("caller");
    let cg = Cgroup::create_with(&opts, &n, &[DeviceRule::allow_all()]).unwrap();
    let paths = dirs(&cg);
    cg.add_process(0).unwrap();
    let me = std::process::id() as i32;
    assert_eq!(cg.pids().unwrap(), [me]);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(own.contains(&format!("/strata/{n}\n")), "{own}");

    cg.remove().unwrap();
    for dir in &paths {
        assert!(!dir.exists(), "{}", dir.display());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(!own.contains(&n), "{own}");
}

#[test]
fn add_process_of_another_pid() {
    let Some(opts) = setup(DeviceBackend::Auto) else { return };
    let n = name("other");
    let parking = Cgroup::create_with(&opts, &name("other-parking"), &[]).unwrap();
    let sleeper = Sleeper::start(parking.join_handle());
    let cg = Cgroup::create_with(&opts, &n, &[]).unwrap();
    cg.add_process(sleeper.pid).unwrap();
    assert_eq!(cg.pids().unwrap(), [sleeper.pid]);
    assert!(parking.pids().unwrap().is_empty());
    assert!(matches!(
        cg.add_process(i32::MAX),
        Err(CgroupError::Join { pid: i32::MAX, .. })
    ));
    drop(sleeper);
    cg.remove().unwrap();
    parking.remove().unwrap();
}

fn stale(backend: DeviceBackend) {
    let Some(opts) = setup(backend) else { return };
    let prefix = name(&format!("stale{backend:?}-"));
    let dead_empty = Cgroup::create_with(&opts, &format!("{prefix}dead"), &[]).unwrap();
    let alive = Cgroup::create_with(&opts, &format!("{prefix}alive"), &[]).unwrap();
    let busy = Cgroup::create_with(&opts, &format!("{prefix}busy"), &[]).unwrap();
    let sleeper = Sleeper::start(busy.join_handle());
    let (dead_dirs, alive_dirs, busy_dirs) = (dirs(&dead_empty), dirs(&alive), dirs(&busy));
    drop((dead_empty, alive));

    // Only our own names are candidates: everything else is "alive".
    let is_alive = |n: &str| !n.starts_with(&prefix) || n.ends_with("alive");
    let removed = Cgroup::remove_stale_with(&opts, is_alive).unwrap();
    assert_eq!(removed, [format!("{prefix}dead")]);
    for dir in &dead_dirs {
        assert!(!dir.exists(), "{}", dir.display());
    }
    for dir in alive_dirs.iter().chain(&busy_dirs) {
        assert!(dir.is_dir(), "{}", dir.display());
    }

    // Once its process is gone the busy one goes too.
    drop(sleeper);
    let removed = Cgroup::remove_stale_with(&opts, is_alive).unwrap();
    assert_eq!(removed, [format!("{prefix}busy")]);
    drop(busy);
    Cgroup::open_with(&opts, &format!("{prefix}alive"))
        .unwrap()
        .remove()
        .unwrap();
    assert!(Cgroup::remove_stale_with(&opts, is_alive).unwrap().is_empty());
}

#[test]
fn remove_stale_v1() {
    stale(DeviceBackend::V1);
}

#[test]
fn remove_stale_bpf() {
    stale(DeviceBackend::Bpf);
}

#[test]
fn detect_this_host() {
    let Ok(opts) = Options::detect() else {
        println!("skipped: no cgroup file system");
        return;
    };
    match opts.hierarchy {
        Hierarchy::Unified { root } => assert_eq!(root, PathBuf::from("/sys/fs/cgroup")),
        Hierarchy::Hybrid { devices, unified } => {
            assert!(devices.join("devices.allow").exists());
            assert!(unified.join("cgroup.procs").exists());
        }
        Hierarchy::Legacy { devices } => assert!(devices.join("devices.allow").exists()),
    }
}
