//! Subordinate ids: the ranges `/etc/subuid` and `/etc/subgid` give a user,
//! as shadow-utils' newuidmap reads them (`name-or-id:start:count`, one
//! range a line, several lines allowed).

use std::path::Path;

/// One range of host ids a user may map into its user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubordinateRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges of `file` for the user `name` (or its numeric `id`), in file
/// order. A missing file is no ranges; malformed lines are skipped, as
/// newuidmap does.
pub fn subordinate_ranges(file: &Path, name: &str, id: u32) -> Vec<SubordinateRange> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    parse(&text, name, id)
}

fn parse(text: &str, name: &str, id: u32) -> Vec<SubordinateRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || (owner != name && owner != id) {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
            (count > 0).then_some(SubordinateRange { start, count })
        })
        .collect()
}

/// The id map lines of a user namespace whose root is `own` and whose ids
/// from 1 on are `ranges` one after another (Podman's layout: container id
/// N is the first range's start + N - 1). Each line is
/// `inside outside count`, as newuidmap takes them.
pub fn id_map(own: u32, ranges: &[SubordinateRange]) -> Vec<(u32, u32, u32)> {
    let mut map = vec![(0, own, 1)];
    let mut next = 1u32;
    for r in ranges {
        map.push((next, r.start, r.count));
        next = next.saturating_add(r.count);
    }
    map
}

/// The login name of `uid` from `/etc/passwd`, else `$USER`.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let uid_s = uid.to_string();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid_s).then(|| name.to_string())
        })
        .or_else(|| std::env::var("USER").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_id_in_file_order() {
        let text = "alice:100000:65536\n# comment\nbob:165536:65536\n1000:300000:10\nalice:x:1\nalice:5:0\n";
        assert_eq!(
            parse(text, "alice", 1000),
            vec![
                SubordinateRange {
                    start: 100000,
                    count: 65536
                },
                SubordinateRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(parse(text, "carol", 1001).is_empty());
    }

    #[test]
    fn map_puts_the_user_at_root_and_ranges_after() {
        let r = [
            SubordinateRange {
                start: 100000,
                count: 65536,
            },
            SubordinateRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            id_map(1001, &r),
            vec![(0, 1001, 1), (1, 100000, 65536), (65537, 300000, 10)]
        );
        assert_eq!(id_map(1001, &[]), vec![(0, 1001, 1)]);
    }
}
