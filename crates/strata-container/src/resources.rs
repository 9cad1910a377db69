//! Docker's resource flags (`--memory`, `--memory-swap`, `--cpus`,
//! `--cpu-shares`, `--pids-limit`): the CLI's parsing of their values and the
//! daemon's checks and defaults, giving the `HostConfig` numbers that
//! `inspect` shows and the runtime applies.

use strata_runtime::Resources;

use crate::error::{Error, Result};

/// Docker's smallest `--memory`.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// A size as Docker's `RAMInBytes` reads it: a number (fractions allowed)
/// with an optional binary unit `b`, `k`, `m`, `g`, `t`, `p` (any case, an
/// optional `i` and `b` after it): `32m`, `1g`, `1.5GiB`, `65536`.
pub fn parse_size(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{text}'");
    let num_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "p" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * mult;
    if bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// `--memory-swap`: `-1` (unlimited swap) or a size.
pub fn parse_memory_swap(text: &str) -> std::result::Result<i64, String> {
    if text == "-1" {
        return Ok(-1);
    }
    parse_size(text)
}

/// `--cpus`: a decimal number of CPUs, as nano CPUs (`0.5` → 500000000).
pub fn parse_cpus(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("failed to parse {text} as a rational number");
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 9 && frac[9..].bytes().any(|b| b != b'0') {
        return Err("value is too precise".to_string());
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    int.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(bad)
}

/// The daemon's side: Docker's checks (its messages) and defaults
/// (`--memory-swap` twice `--memory` when not given; a pids limit ≤ 0 is none).
pub fn resolve(given: &Resources) -> Result<Resources> {
    let mut r = given.clone();
    let invalid = |m: String| Err(Error::InvalidResources(m));
    if r.memory < 0 {
        r.memory = 0;
    }
    if r.memory != 0 && r.memory < MIN_MEMORY {
        return invalid("Minimum memory limit allowed is 6MB".into());
    }
    if r.memory_swap > 0 && r.memory == 0 {
        return invalid("You should always set the Memory limit when using Memoryswap limit, see usage".into());
    }
    if r.memory_swap > 0 && r.memory_swap < r.memory {
        return invalid("Minimum memoryswap limit should be larger than memory limit, see usage".into());
    }
    if r.memory > 0 && r.memory_swap == 0 {
        r.memory_swap = r.memory * 2;
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if r.nano_cpus < 0 || r.nano_cpus > ncpu * 1_000_000_000 {
        return invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        ));
    }
    if r.cpu_shares < 0 {
        return invalid(format!("invalid CPU shares: {}", r.cpu_shares));
    }
    if r.pids_limit.is_some_and(|n| n <= 0) {
        r.pids_limit = None;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32m"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("10b"), Ok(10));
        for bad in ["", "m", "32x", "-1", "1..2m", ".5m"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_memory_swap("-1"), Ok(-1));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert!(parse_cpus("abc").is_err());
        assert!(parse_cpus("-1").is_err());
    }

    #[test]
    fn docker_rules() {
        let r = resolve(&Resources {
            memory: 32 << 20,
            pids_limit: Some(-1),
            ..Resources::default()
        })
        .unwrap();
        assert_eq!(r.memory_swap, 64 << 20);
        assert_eq!(r.pids_limit, None);
        let msg = |r: &Resources| resolve(r).unwrap_err().to_string();
        assert_eq!(
            msg(&Resources {
                memory: 1 << 20,
                ..Resources::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(
            msg(&Resources {
                memory_swap: 64 << 20,
                ..Resources::default()
            })
            .starts_with("You should always set the Memory limit")
        );
        let unlimited = resolve(&Resources {
            memory: 32 << 20,
            memory_swap: -1,
            ..Resources::default()
        })
        .unwrap();
        assert_eq!(unlimited.memory_swap, -1);
    }
}
