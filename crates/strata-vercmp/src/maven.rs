//! Maven versions, ordered as Maven 3.8's `ComparableVersion`
//! (maven-artifact 3.8.7, the one Debian 12 ships and the tests run).
//!
//! The string is lowercased and cut into items at `.`, at `-` (which also
//! opens a nested list) and at each change between digits and non-digits
//! (which opens a nested list too). Items are numbers (any size; by Java
//! size class — up to 9 digits, up to 18, more, leading zeros not counted
//! unless the number is all zeros — then by value),
//! qualifiers (`alpha` = `a`+digit < `beta` = `b`+digit < `milestone` =
//! `m`+digit < `rc` = `cr` < `snapshot` < `` = `ga` = `final` = `release` <
//! `sp` < any other, those alphabetically) and lists. Trailing "null" items
//! (0, the release qualifier, empty lists) are dropped. A number beats a list,
//! which beats a qualifier; a missing item compares as null. Any ASCII string
//! is a version (Maven takes any string at all; non-ASCII is refused here
//! because Java's Unicode digits and case mapping are not mirrored, and so
//! are lists nested over 500 deep).
//!
//! Maven's order is not transitive: `2` < `2.r.p` < `2.rc` < `2`. (`r`
//! stays a bare qualifier, which is below any list; the last `rc` goes into
//! a list of its own, which is below the release; the release is below the
//! unknown `r`.) This module reproduces that, so `MavenVersion` has
//! `compare` but no `Ord`: never sort with it.

use std::cmp::Ordering;

use crate::num::{cmp_decimal, is_zero};
use crate::{Scheme, VersionError};

/// A parsed Maven version: its item list.
#[derive(Debug, Clone)]
pub struct MavenVersion {
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    /// A number: Java's size class (int, long, BigInteger: 0, 1, 2) and
    /// its digits without leading zeros.
    Number(u8, String),
    /// A qualifier after aliasing (`ga` → ``, `cr` → `rc`, …).
    Text(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
/// The rank of the release qualifier `` in `QUALIFIERS`.
const RELEASE: usize = 5;

impl MavenVersion {
    pub fn parse(s: &str) -> Result<MavenVersion, VersionError> {
        if !s.is_ascii() {
            return Err(VersionError::new(Scheme::Maven, s, "not ASCII"));
        }
        let items = parse(&s.to_ascii_lowercase()).map_err(|why| VersionError::new(Scheme::Maven, s, why))?;
        Ok(MavenVersion { items })
    }

    /// Maven's ordering. It is not `Ord`: Maven's order is not transitive
    /// for some qualifiers after a `.` (`2` < `2.r.p` < `2.rc` < `2`), so
    /// it must not be used to sort (Rust's sorts may panic on such an
    /// order); compare pairs.
    pub fn compare(&self, other: &MavenVersion) -> Ordering {
        cmp_lists(&self.items, &other.items)
    }
}

/// Lists nest once per `-` and per change between digits and letters; more
/// than this many levels is refused, so that comparing stays within the
/// stack (no real version comes near it).
const MAX_DEPTH: usize = 500;

/// Maven picks `int`, `long` or `BigInteger` by the length of the digits
/// once leading zeros are stripped — but a run of zeros only is kept whole,
/// so ten zeros make a `long` zero. Numbers of different classes compare
/// by class alone (a `long` zero is above any `int`).
fn number(digits: &str) -> Item {
    let stripped = digits.trim_start_matches('0');
    let len = if stripped.is_empty() {
        digits.len()
    } else {
        stripped.len()
    };
    let class = match len {
        0..=9 => 0,
        10..=18 => 1,
        _ => 2,
    };
    Item::Number(class, stripped.to_owned())
}

fn text(s: &str, followed_by_digit: bool) -> Item {
    let s = match s {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        _ => s,
    };
    Item::Text(
        match s {
            "ga" | "final" | "release" => "",
            "cr" => "rc",
            _ => s,
        }
        .to_owned(),
    )
}

fn item(is_digit: bool, s: &str) -> Item {
    if is_digit { number(s) } else { text(s, false) }
}

/// The nesting of lists as a path of indexes from the root, so that items
/// can be appended to the innermost open list.
struct Builder {
    root: Vec<Item>,
    /// Index path of the current list (empty: the root).
    path: Vec<usize>,
}

impl Builder {
    fn current(&mut self) -> &mut Vec<Item> {
        let mut list = &mut self.root;
        for &i in &self.path {
            list = match &mut list[i] {
                Item::List(l) => l,
                _ => unreachable!("the path only goes through lists"),
            };
        }
        list
    }

    fn add(&mut self, item: Item) {
        self.current().push(item);
    }

    /// Appends a new empty list to the current one and makes it current.
    fn open(&mut self) {
        let list = self.current();
        list.push(Item::List(Vec::new()));
        let at = list.len() - 1;
        self.path.push(at);
    }
}

fn parse(v: &str) -> Result<Vec<Item>, &'static str> {
    let b = v.as_bytes();
    let mut t = Builder {
        root: Vec::new(),
        path: Vec::new(),
    };
    let mut is_digit = false;
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if t.path.len() > MAX_DEPTH {
            return Err("lists nested too deeply");
        }
        match c {
            b'.' | b'-' => {
                if i == start {
                    t.add(Item::Number(0, String::new()));
                } else {
                    t.add(item(is_digit, &v[start..i]));
                }
                start = i + 1;
                if c == b'-' {
                    t.open();
                }
            }
            b'0'..=b'9' => {
                if !is_digit && i > start {
                    if !t.current().is_empty() {
                        t.open();
                    }
                    t.add(text(&v[start..i], true));
                    start = i;
                    t.open();
                }
                is_digit = true;
            }
            _ => {
                if is_digit && i > start {
                    t.add(number(&v[start..i]));
                    start = i;
                    t.open();
                }
                is_digit = false;
            }
        }
    }
    if b.len() > start {
        if !is_digit && !t.current().is_empty() {
            t.open();
        }
        t.add(item(is_digit, &v[start..]));
    }
    normalize(&mut t.root);
    Ok(t.root)
}

/// Drops trailing null items, innermost lists first; a non-null list at the
/// end is stepped over (what is before it may still be dropped).
fn normalize(list: &mut Vec<Item>) {
    for item in list.iter_mut() {
        if let Item::List(inner) = item {
            normalize(inner);
        }
    }
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// A qualifier's rank: known ones by position, unknown ones after all of
/// them and alphabetically among themselves.
fn qualifier_cmp(a: &str, b: &str) -> Ordering {
    let rank = |q: &str| QUALIFIERS.iter().position(|k| *k == q);
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Number(_, n) => is_zero(n),
            Item::Text(t) => t.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// `self` against a missing item.
    fn cmp_null(&self) -> Ordering {
        match self {
            Item::Number(_, n) => {
                if is_zero(n) {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            Item::Text(t) => qualifier_cmp(t, QUALIFIERS[RELEASE]),
            Item::List(l) => l
                .iter()
                .map(Item::cmp_null)
                .find(|c| c.is_ne())
                .unwrap_or(Ordering::Equal),
        }
    }

    fn cmp_item(&self, other: &Item) -> Ordering {
        match (self, other) {
            (Item::Number(ca, a), Item::Number(cb, b)) => ca.cmp(cb).then_with(|| cmp_decimal(a, b)),
            (Item::Number(..), _) => Ordering::Greater,
            (Item::Text(_), Item::Number(..) | Item::List(_)) => Ordering::Less,
            (Item::Text(a), Item::Text(b)) => qualifier_cmp(a, b),
            (Item::List(_), Item::Number(..)) => Ordering::Less,
            (Item::List(_), Item::Text(_)) => Ordering::Greater,
            (Item::List(a), Item::List(b)) => cmp_lists(a, b),
        }
    }
}

fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let c = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => x.cmp_item(y),
            (Some(x), None) => x.cmp_null(),
            (None, Some(y)) => y.cmp_null().reverse(),
            (None, None) => Ordering::Equal,
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}
