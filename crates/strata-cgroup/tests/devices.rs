//! Device allow-lists enforced for real: a forked child in the cgroup may use
//! /dev/null but can neither mknod nor open a block device (`b 7:0`, a loop
//! device's number, made in a scratch directory), while the same child
//! outside the cgroup can; for the v1 devices controller and for the BPF
//! filter on the cgroup2 tree.

mod common;

use common::{Probe, make_block_node, name, probe, setup};
use strata_cgroup::{Cgroup, DeviceBackend, DeviceKind, DeviceRule, LeafKind, bpf, default_device_rules, v1};

const EPERM: i32 = libc::EPERM;

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        make_block_node(&dir.path().join("loop0"));
        Scratch { dir }
    }

    fn probe(&self, cgroup: Option<&Cgroup>) -> Probe {
        probe(
            cgroup.map(Cgroup::join_handle),
            self.dir.path(),
            &self.dir.path().join("loop0"),
        )
    }
}

/// Without a cgroup the probe's block device accesses work (the open may
/// find no driver: ENXIO), so a later EPERM comes from the cgroup.
fn check_uncontained(scratch: &Scratch) {
    let free = scratch.probe(None);
    assert_eq!(free.null_rw, 0, "{free:?}");
    assert_eq!(free.mknod_block, 0, "{free:?}");
    assert!(free.open_block == 0 || free.open_block == libc::ENXIO, "{free:?}");
    assert_eq!(free.mknod_char, 0, "{free:?}");
}

fn default_rules_block(backend: DeviceBackend) {
    let Some(opts) = setup(backend) else { return };
    let scratch = Scratch::new();
    check_uncontained(&scratch);

    let cg = Cgroup::create_with(&opts, &name("defaults"), &default_device_rules()).unwrap();
    let kinds: Vec<LeafKind> = cg.paths().iter().map(|p| p.0).collect();
    match backend {
        DeviceBackend::Bpf => assert_eq!(kinds, [LeafKind::Unified]),
        _ => {
            assert_eq!(kinds[0], LeafKind::DevicesV1);
            let list = v1::device_list(cg.paths()[0].1).unwrap();
            let want: Vec<String> = default_device_rules().iter().map(|r| r.to_string()).collect();
            assert_eq!(list, want);
        }
    }
    let inside = scratch.probe(Some(&cg));
    assert_eq!(
        inside,
        Probe {
            join: 0,
            null_rw: 0,
            mknod_block: EPERM,
            open_block: EPERM,
            mknod_char: 0,
        }
    );
    cg.remove().unwrap();
}

#[test]
fn v1_default_rules_block_devices() {
    default_rules_block(DeviceBackend::V1);
}

#[test]
fn bpf_default_rules_block_devices() {
    default_rules_block(DeviceBackend::Bpf);
}

fn explicit_and_privileged(backend: DeviceBackend) {
    let Some(opts) = setup(backend) else { return };
    let scratch = Scratch::new();
    let node = scratch.dir.path().join("loop0");

    // --device /dev/loop0:/dev/loop0:r: open for reading, no mknod.
    let mut rules = default_device_rules();
    rules.push(DeviceRule::for_node(&node, "r").unwrap());
    let cg = Cgroup::create_with(&opts, &name("device-r"), &rules).unwrap();
    let p = scratch.probe(Some(&cg));
    assert!(p.open_block == 0 || p.open_block == libc::ENXIO, "{p:?}");
    assert_eq!((p.null_rw, p.mknod_block, p.mknod_char), (0, EPERM, 0), "{p:?}");
    cg.remove().unwrap();

    // Only mknod of 7:*, as a Block/All rule: creating works, opening not.
    let rules = [DeviceRule::new(DeviceKind::All, Some(7), None, "m").unwrap()];
    let cg = Cgroup::create_with(&opts, &name("device-m"), &rules).unwrap();
    let p = scratch.probe(Some(&cg));
    assert_eq!(
        (p.null_rw, p.mknod_block, p.open_block, p.mknod_char),
        (EPERM, 0, EPERM, EPERM),
        "{p:?}"
    );
    cg.remove().unwrap();

    // --privileged.
    let cg = Cgroup::create_with(&opts, &name("privileged"), &[DeviceRule::allow_all()]).unwrap();
    let p = scratch.probe(Some(&cg));
    assert!(p.open_block == 0 || p.open_block == libc::ENXIO, "{p:?}");
    assert_eq!((p.join, p.null_rw, p.mknod_block, p.mknod_char), (0, 0, 0, 0), "{p:?}");
    cg.remove().unwrap();
}

#[test]
fn v1_explicit_device_and_privileged() {
    explicit_and_privileged(DeviceBackend::V1);
}

#[test]
fn bpf_explicit_device_and_privileged() {
    explicit_and_privileged(DeviceBackend::Bpf);
}

#[test]
fn bpf_programs_pass_the_verifier() {
    if setup(DeviceBackend::Bpf).is_none() {
        return;
    }
    let rule = |kind, major, minor, perms| DeviceRule::new(kind, major, minor, perms).unwrap();
    let sets: Vec<Vec<DeviceRule>> = vec![
        vec![],
        default_device_rules(),
        vec![DeviceRule::allow_all()],
        vec![rule(DeviceKind::All, None, None, "rw")],
        vec![
            rule(DeviceKind::Block, Some(7), None, "r"),
            rule(DeviceKind::Char, None, Some(3), "wm"),
        ],
        vec![rule(DeviceKind::Char, Some(u32::MAX), Some(u32::MAX), "rwm")],
    ];
    for rules in sets {
        bpf::load_device_program(&rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"));
    }
}
