//! With the `isal` feature (the default) and ISA-L's headers installed
//! (Debian's libisal-dev), gzip layers are inflated by igzip through a small
//! C shim (`csrc/igzip_shim.c`, cfg `strata_isal`); without them, by zlib-rs.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(strata_isal)");
    println!("cargo:rerun-if-changed=csrc/igzip_shim.c");
    println!("cargo:rerun-if-env-changed=STRATA_NO_ISAL");
    if std::env::var_os("CARGO_FEATURE_ISAL").is_none() || std::env::var_os("STRATA_NO_ISAL").is_some() {
        return;
    }
    let header = ["/usr/include/isa-l/igzip_lib.h", "/usr/local/include/isa-l/igzip_lib.h"]
        .into_iter()
        .find(|h| std::path::Path::new(h).exists());
    let Some(header) = header else {
        println!("cargo:warning=ISA-L (libisal-dev) is not installed: gzip layers are inflated by zlib-rs");
        return;
    };
    println!("cargo:rerun-if-changed={header}");
    cc::Build::new()
        .file("csrc/igzip_shim.c")
        .opt_level(2)
        .compile("strata_igzip_shim");
    println!("cargo:rustc-link-lib=isal");
    println!("cargo:rustc-cfg=strata_isal");
}
