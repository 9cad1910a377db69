//! Container IDs (64 random hex digits) and Docker-style generated names.

use std::io::Read;

pub fn random_id() -> String {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("reading /dev/urandom");
    strata_oci::digest::to_hex(&b)
}

const LEFT: &[&str] = &[
    "admiring", "bold", "brave", "busy", "clever", "dreamy", "eager", "elegant", "epic", "focused", "gallant", "happy",
    "hopeful", "jolly", "keen", "kind", "loving", "modest", "nifty", "peaceful", "quirky", "relaxed", "serene",
    "sharp", "stoic", "sweet", "tender", "vibrant", "wizardly", "zealous",
];
const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "goldberg",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yonath",
];

pub fn random_name(seed: &str) -> String {
    let b = u64::from_str_radix(&seed[..12], 16).unwrap_or(0);
    let l = LEFT[(b % LEFT.len() as u64) as usize];
    let r = RIGHT[((b / 97) % RIGHT.len() as u64) as usize];
    format!("{l}_{r}")
}

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub fn check_name(name: &str) -> crate::Result<()> {
    if !is_valid_name(name) {
        return Err(crate::Error::InvalidName(name.to_string()));
    }
    Ok(())
}
