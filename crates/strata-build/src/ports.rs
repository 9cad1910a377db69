//! `EXPOSE` words as BuildKit reads them: `[ip:][hostPort:]containerPort[/proto]`,
//! the container port possibly a range (`7000-7002/udp` is three ports).

/// The `port/proto` entries one `EXPOSE` word stands for (the protocol
/// lower-cased, `tcp` when none is given); the error is BuildKit's message.
pub fn expose_ports(word: &str) -> Result<Vec<String>, String> {
    let container = word.rsplit(':').next().unwrap_or(word);
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    let invalid = |why: &str| format!("invalid port: {word:?}: {why}");
    if port.is_empty() {
        return Err(invalid("no port specified"));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        _ => return Err(invalid(&format!("invalid proto: {proto}"))),
    };
    let number = |s: &str| s.parse::<u16>().ok();
    let bad_range = || format!("invalid containerPort: {port}");
    let (start, end) = match port.split_once('-') {
        Some((a, b)) if a != b => {
            let (a, b) = (number(a).ok_or_else(bad_range)?, number(b).ok_or_else(bad_range)?);
            if b < a {
                return Err(bad_range());
            }
            (a, b)
        }
        Some((a, _)) => {
            let a = number(a).ok_or_else(bad_range)?;
            (a, a)
        }
        None => {
            let a = number(port).ok_or_else(bad_range)?;
            (a, a)
        }
    };
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::expose_ports;

    #[test]
    fn ranges_protocols_and_host_parts() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(
            expose_ports("7000-7002/udp").unwrap(),
            ["7000/udp", "7001/udp", "7002/udp"]
        );
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expose_ports("8080:80/sctp").unwrap(), ["80/sctp"]);
        assert_eq!(expose_ports("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("90-90").unwrap(), ["90/tcp"]);
        assert!(expose_ports("80/icmp").is_err());
        assert!(expose_ports("x").is_err());
        assert!(expose_ports("9-3").is_err());
        assert!(expose_ports("70000").is_err());
        assert!(expose_ports("/tcp").is_err());
    }
}
