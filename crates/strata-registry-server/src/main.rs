//! `strata-registry`: the registry alone (`serve`, `gc`), for tests and for
//! deployments that want no more than the registry. `strata registry ...`
//! runs the same code.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(strata_registry_server::cli_main(args));
}
