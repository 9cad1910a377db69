//! The host's answers from a directory laid out like binfmt_misc, with the
//! entries real kernels print: F or not, disabled, extension handlers, a
//! broken entry, binfmt_misc switched off; and what install/uninstall
//! write there.

use std::fs;
use std::path::Path;

use strata_emulation::{Binfmt, EmulationError, Host, How, InstallOptions, Outcome, find_arch, install, uninstall};
use strata_oci::Platform;

const AARCH64_F: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POCF\noffset 0\n\
    magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
// Debian's binfmt-support registration before F was its default.
const ARM_NO_F: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: OC\noffset 0\n\
    magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
const RISCV64_OFF: &str = "disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\noffset 0\n\
    magic 7f454c460201010000000000000000000200f300\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
// A name that says nothing: the magic decides (s390x, big endian).
const ODD_NAME_S390X: &str = "enabled\ninterpreter /opt/emu/s390x\nflags: F\noffset 0\n\
    magic 7f454c460202010000000000000000000002001600000001\n\
    mask fffffffffffffffffffffffffffffffffffeffff00000000\n";
const PYTHON: &str = "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n";
const WINE: &str = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";

fn fake(entries: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("register"), "").unwrap();
    fs::write(d.path().join("status"), "enabled\n").unwrap();
    for (name, text) in entries {
        fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn host_is_amd64() -> bool {
    strata_emulation::host_platform().architecture == "amd64"
}

#[test]
fn handlers_map_to_platforms_by_magic() {
    if !host_is_amd64() {
        eprintln!("skipped: the fake entries are foreign to an amd64 host");
        return;
    }
    let d = fake(&[
        ("qemu-aarch64", AARCH64_F),
        ("qemu-arm", ARM_NO_F),
        ("qemu-riscv64", RISCV64_OFF),
        ("zz-some-emulator", ODD_NAME_S390X),
        ("python3.11", PYTHON),
        ("wine", WINE),
        ("broken", "enabled\nflags: F\n"),
    ]);
    let host = Host::probe_with(&Binfmt::at(d.path()));
    assert_eq!(host.skipped.len(), 1, "{:?}", host.skipped);
    assert!(host.skipped[0].to_string().contains("broken"));

    assert_eq!(host.can_run(&p("linux/amd64")).unwrap(), How::Native);
    assert_eq!(
        host.can_run(&p("linux/arm64")).unwrap(),
        How::Emulated {
            handler: "qemu-aarch64".into(),
            interpreter: "/usr/bin/qemu-aarch64-static".into()
        }
    );
    assert_eq!(
        host.can_run(&p("linux/arm64/v8")).unwrap(),
        host.can_run(&p("linux/arm64")).unwrap()
    );
    assert!(
        matches!(host.can_run(&p("linux/s390x")), Ok(How::Emulated { handler, .. }) if handler == "zz-some-emulator")
    );

    let e = host.can_run(&p("linux/arm/v7")).unwrap_err();
    assert!(matches!(e, EmulationError::NotFixed { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("linux/arm/v7") && m.contains("without the F") && m.contains("strata buildx install-emulators arm"),
        "{m}"
    );
    let m = host.can_run(&p("linux/riscv64")).unwrap_err().to_string();
    assert!(
        m.contains("linux/riscv64") && m.contains("qemu-riscv64 is disabled"),
        "{m}"
    );
    assert!(m.contains("strata buildx install-emulators riscv64"), "{m}");
    let m = host.can_run(&p("linux/ppc64le")).unwrap_err().to_string();
    assert_eq!(
        m,
        "platform linux/ppc64le cannot run on this host (linux/amd64): no emulator is registered for it with \
         binfmt_misc; `strata buildx install-emulators ppc64le` registers QEMU's (as root)"
    );
    for bad in ["linux/foo", "linux/arm/v9", "windows/amd64", "linux/arm64/v7"] {
        let m = host.can_run(&p(bad)).unwrap_err().to_string();
        assert!(
            m.starts_with(&format!("unknown platform {bad}: strata knows linux/amd64, ")),
            "{m}"
        );
    }

    // Native first, then each emulated platform (F and enabled only).
    let plats = host.platforms();
    assert_eq!(plats[0], "linux/amd64");
    let emulated: Vec<&String> = plats
        .iter()
        .filter(|p| !["linux/amd64", "linux/386"].contains(&p.as_str()))
        .collect();
    assert_eq!(emulated, ["linux/arm64", "linux/s390x"]);
}

#[test]
fn binfmt_switched_off_runs_nothing_foreign() {
    if !host_is_amd64() {
        return;
    }
    let d = fake(&[("qemu-aarch64", AARCH64_F)]);
    fs::write(d.path().join("status"), "disabled\n").unwrap();
    let host = Host::probe_with(&Binfmt::at(d.path()));
    let m = host.can_run(&p("linux/arm64")).unwrap_err().to_string();
    assert!(m.contains("binfmt_misc is disabled"), "{m}");
    assert!(!host.platforms().contains(&"linux/arm64".to_string()));
}

#[test]
fn unreadable_binfmt_says_why() {
    if !host_is_amd64() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let host = Host::probe_with(&Binfmt::at(d.path().join("none")));
    let m = host.can_run(&p("linux/arm64")).unwrap_err().to_string();
    assert!(m.contains("no emulator is registered") && m.contains("none"), "{m}");
}

/// What `install` reports, and how it ended.
fn install_all(
    arches: &[&'static strata_emulation::Arch],
    o: &InstallOptions,
) -> (Vec<Outcome>, Result<(), EmulationError>) {
    let mut done = Vec::new();
    let r = install(arches, o, |x| done.push(x));
    (done, r)
}

fn opts(d: &Path, qemu: &Path) -> InstallOptions {
    InstallOptions {
        binfmt: Binfmt::at(d),
        qemu_dir: qemu.to_path_buf(),
        ..Default::default()
    }
}

#[test]
fn install_writes_qemus_registration_and_uninstall_removes_by_magic() {
    if !host_is_amd64() {
        return;
    }
    let d = fake(&[]);
    let qemu = tempfile::tempdir().unwrap();
    let arm64 = find_arch("arm64").unwrap();
    // No interpreter: the error says which package has it.
    let (done, r) = install_all(&[arm64], &opts(d.path(), qemu.path()));
    assert!(done.is_empty());
    let e = r.unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("qemu-aarch64-static not found") && m.contains("apt-get install qemu-user-static"),
        "{m}"
    );

    fs::write(qemu.path().join("qemu-aarch64-static"), "").unwrap();
    // A plain directory is no kernel: the line is written, no entry appears.
    let e = install_all(&[arm64], &opts(d.path(), qemu.path())).1.unwrap_err();
    assert!(matches!(e, EmulationError::NotRegistered { .. }), "{e:?}");
    let line = fs::read_to_string(d.path().join("register")).unwrap();
    assert_eq!(
        line,
        format!(
            r":qemu-aarch64:M:0:\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:{}/qemu-aarch64-static:POCF",
            qemu.path().display()
        )
    );

    // Already there as strata registers it: left alone.
    let entry = format!(
        "enabled\ninterpreter {}/qemu-aarch64-static\nflags: POCF\noffset 0\n\
         magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        qemu.path().display()
    );
    fs::write(d.path().join("qemu-aarch64"), &entry).unwrap();
    fs::write(d.path().join("register"), "").unwrap();
    let (out, r) = install_all(&[arm64], &opts(d.path(), qemu.path()));
    r.unwrap();
    assert!(
        matches!(&out[..], [Outcome::AlreadyInstalled { arch: "arm64", .. }]),
        "{out:?}"
    );
    assert_eq!(fs::read_to_string(d.path().join("register")).unwrap(), "");

    // The host's own architecture needs none.
    let (out, r) = install_all(&[find_arch("amd64").unwrap()], &opts(d.path(), qemu.path()));
    r.unwrap();
    assert_eq!(out, [Outcome::Native { arch: "amd64" }]);

    // Uninstall finds handlers by what they take, whatever their name.
    fs::write(d.path().join("other-name"), AARCH64_F).unwrap();
    fs::write(d.path().join("wine"), WINE).unwrap();
    let out = uninstall(&[arm64], &Binfmt::at(d.path())).unwrap();
    let mut removed: Vec<String> = out
        .iter()
        .map(|o| match o {
            Outcome::Removed { handler, .. } => handler.clone(),
            o => panic!("{o:?}"),
        })
        .collect();
    removed.sort();
    assert_eq!(removed, ["other-name", "qemu-aarch64"]);
    // (A regular file keeps what follows the write; the kernel's removes.)
    assert!(
        fs::read_to_string(d.path().join("qemu-aarch64"))
            .unwrap()
            .starts_with("-1abled")
    );
    assert_eq!(fs::read_to_string(d.path().join("wine")).unwrap(), WINE);
    let out = uninstall(&[find_arch("s390x").unwrap()], &Binfmt::at(d.path())).unwrap();
    assert_eq!(out, [Outcome::NotInstalled { arch: "s390x" }]);
}
