//! Timestamps as images carry them (RFC 3339) and as Docker prints them.

use jiff::Timestamp;

pub fn now_rfc3339() -> String {
    format_rfc3339(Timestamp::now())
}

pub fn format_rfc3339(t: Timestamp) -> String {
    t.to_string()
}

pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// Docker's `units.HumanDuration` + " ago" ("2 hours ago", "About a minute ago").
pub fn human_since(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".to_string();
    };
    let secs = (Timestamp::now().as_second() - t.as_second()).max(0);
    format!("{} ago", human_duration(secs))
}

pub fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let hours_rounded = (seconds as f64 / 3600.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours_rounded == 1 {
        "About an hour".into()
    } else if hours_rounded < 48 {
        format!("{hours_rounded} hours")
    } else if hours_rounded < 24 * 7 * 2 {
        format!("{} days", hours_rounded / 24)
    } else if hours_rounded < 24 * 30 * 2 {
        format!("{} weeks", hours_rounded / 24 / 7)
    } else if hours_rounded < 24 * 365 * 2 {
        format!("{} months", hours_rounded / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(800 * 86400), "2 years");
        assert!(parse_rfc3339("2024-01-02T03:04:05.123456789Z").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05+02:00").is_some());
    }
}
