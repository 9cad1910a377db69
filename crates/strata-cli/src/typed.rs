//! `inspect -f` as docker runs it: the template is executed on Docker's Go
//! structs first, and only when that fails (a field the struct does not
//! have) on the raw JSON. On the structs every field exists, typed: an
//! `omitempty` field left out of the JSON is still there (`StopSignal` is
//! `""`), a nil slice prints `[]`, a nil map `map[]`, a nil pointer `<nil>`
//! (`{{.Config.Healthcheck}}`), and `{{json …}}` prints what the daemon
//! sent (`null` for the nil ones, `omitempty` fields left out).
//!
//! gotmpl's values carry no Go types, so the typed view marks its nil
//! slices, nil maps and `struct{}` values with shared allocations that
//! `{{json}}` recognises ([`to_json`]), and a struct's `omitempty` fields by
//! the struct's set of fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;
use serde_json::Value as Json;
use strata_image::docker_inspect::{CONFIG_FIELDS, Field, FieldKind, HEALTH_FIELDS, IMAGE_OMITTED, ROOTFS_FIELDS};

thread_local! {
    static NIL_LIST: Arc<[Value]> = Arc::from(Vec::new());
    static NIL_MAP: Arc<BTreeMap<Arc<str>, Value>> = Arc::new(BTreeMap::new());
    // A nil `map[string]struct{}` (`Volumes`): `index` gives `{}`.
    static NIL_SET: Arc<BTreeMap<Arc<str>, Value>> = Arc::new(BTreeMap::new());
    static EMPTY_STRUCT: Arc<str> = Arc::from("{}");
    // `nat.PortSet` (`ExposedPorts`): its keys are `nat.Port`, which `index`
    // with a string cannot take (Go: an error, then the raw JSON).
    static NIL_PORTS: Arc<BTreeMap<Arc<str>, Value>> = Arc::new(BTreeMap::new());
    static PORT_STRUCT: Arc<str> = Arc::from("{}");
}

fn nil_list() -> Value {
    Value::List(NIL_LIST.with(Arc::clone))
}

fn nil_map() -> Value {
    Value::Map(NIL_MAP.with(Arc::clone))
}

fn empty_struct() -> Value {
    Value::String(EMPTY_STRUCT.with(Arc::clone))
}

/// A value of the typed view as the JSON Docker's daemon marshals: marked
/// nils as `null`, `struct{}` as `{}`, Docker structs without their empty
/// `omitempty` fields.
pub fn to_json(v: &Value) -> Option<Json> {
    Some(match v {
        Value::List(l) if NIL_LIST.with(|n| Arc::ptr_eq(n, l)) => Json::Null,
        Value::Map(m)
            if [&NIL_MAP, &NIL_SET, &NIL_PORTS]
                .iter()
                .any(|k| k.with(|n| Arc::ptr_eq(n, m))) =>
        {
            Json::Null
        }
        Value::String(s) if EMPTY_STRUCT.with(|n| Arc::ptr_eq(n, s)) || PORT_STRUCT.with(|n| Arc::ptr_eq(n, s)) => {
            Json::Object(Default::default())
        }
        Value::List(l) => Json::Array(l.iter().map(crate::format::value_to_json).collect()),
        Value::Map(m) => {
            let (order, omitted) = docker_struct_of(m);
            let mut keys: Vec<&str> = m.keys().map(|k| &**k).collect();
            // A Go struct marshals its fields in their declared order.
            keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
            let health = order.first() == Some(&"Test");
            Json::Object(
                keys.into_iter()
                    .map(|k| {
                        let v = match (&m[k], health && DURATIONS.contains(&k)) {
                            (Value::String(d), true) => parse_go_duration(d).map_or(Json::Null, Json::from),
                            (v, _) => crate::format::value_to_json(v),
                        };
                        (k.to_string(), v)
                    })
                    .filter(|(k, v)| !(omitted.contains(&k.as_str()) && strata_image::docker_inspect::is_empty(v)))
                    .collect(),
            )
        }
        _ => return None,
    })
}

/// `types.ImageInspect`'s fields in order (strata's `Manifest` after them).
const IMAGE_ORDER: &[&str] = &[
    "Id",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Container",
    "ContainerConfig",
    "DockerVersion",
    "Author",
    "Config",
    "Architecture",
    "Variant",
    "Os",
    "OsVersion",
    "Size",
    "VirtualSize",
    "GraphDriver",
    "RootFS",
    "Metadata",
];

/// The field order and `omitempty` fields of the Docker struct whose
/// fields `m` has (none for any other map: its keys stay sorted).
fn docker_struct_of(m: &BTreeMap<Arc<str>, Value>) -> (Vec<&'static str>, Vec<&'static str>) {
    let has_all = |fields: &[Field]| fields.iter().all(|(n, _, _)| m.contains_key(*n));
    for fields in [CONFIG_FIELDS, HEALTH_FIELDS, ROOTFS_FIELDS] {
        if has_all(fields) && m.len() == fields.len() {
            return (
                fields.iter().map(|f| f.0).collect(),
                fields.iter().filter(|f| f.2).map(|f| f.0).collect(),
            );
        }
    }
    if has_all(IMAGE_OMITTED) && m.contains_key("VirtualSize") && m.contains_key("GraphDriver") {
        return (IMAGE_ORDER.to_vec(), IMAGE_OMITTED.iter().map(|f| f.0).collect());
    }
    (vec![], vec![])
}

fn field(kind: FieldKind, v: Option<&Json>) -> Value {
    let v = v.filter(|v| !v.is_null());
    match (kind, v) {
        (FieldKind::StrList | FieldKind::StrSlice, Some(Json::Array(_))) => crate::format::json_to_value(v.unwrap()),
        (FieldKind::StrList | FieldKind::StrSlice, _) => nil_list(),
        (FieldKind::StrMap, Some(Json::Object(_))) => crate::format::json_to_value(v.unwrap()),
        (FieldKind::Set, Some(Json::Object(o))) => Value::Map(Arc::new(
            o.keys().map(|k| (Arc::from(k.as_str()), empty_struct())).collect(),
        )),
        (FieldKind::StrMap, _) => nil_map(),
        (FieldKind::Set, _) => Value::Map(NIL_SET.with(Arc::clone)),
        (FieldKind::Health, Some(v)) => structure(HEALTH_FIELDS, v),
        (FieldKind::ConfigPtr, Some(v)) => structure(CONFIG_FIELDS, v),
        (_, Some(v)) => crate::format::json_to_value(v),
        (_, None) => crate::format::json_to_value(&strata_image::docker_inspect::zero(kind)),
    }
}

/// A Go struct of `fields` from its JSON: every field, typed (a
/// `time.Duration` of the health check as Go prints it, `5s`).
fn structure(fields: &[Field], v: &Json) -> Value {
    let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    for &(name, kind, _) in fields {
        let mut typed = field(kind, v.get(name));
        if name == "ExposedPorts" {
            typed = match typed {
                Value::Map(m) if NIL_SET.with(|n| Arc::ptr_eq(n, &m)) => Value::Map(NIL_PORTS.with(Arc::clone)),
                Value::Map(m) => Value::Map(Arc::new(
                    m.keys()
                        .map(|k| (k.clone(), Value::String(PORT_STRUCT.with(Arc::clone))))
                        .collect(),
                )),
                other => other,
            };
        }
        if std::ptr::eq(fields, HEALTH_FIELDS) && DURATIONS.contains(&name) {
            let n = v.get(name).and_then(Json::as_i64).unwrap_or(0);
            typed = Value::String(Arc::from(go_duration(n).as_str()));
        }
        m.insert(Arc::from(name), typed);
    }
    Value::Map(Arc::new(m))
}

/// `container.HealthConfig`'s `time.Duration` fields.
const DURATIONS: &[&str] = &["Interval", "Timeout", "StartPeriod"];

/// Go's `time.Duration.String()`: `0s`, `1.5s`, `1h0m0s`, `500ms`, `2µs`.
fn go_duration(n: i64) -> String {
    fn frac(v: u64, div: u64, digits: usize) -> String {
        let (whole, f) = (v / div, v % div);
        if f == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{f:0digits$}").trim_end_matches('0').to_string()
        }
    }
    let u = n.unsigned_abs();
    let out = match u {
        0 => return "0s".into(),
        1..1_000 => format!("{u}ns"),
        1_000..1_000_000 => format!("{}µs", frac(u, 1_000, 3)),
        1_000_000..1_000_000_000 => format!("{}ms", frac(u, 1_000_000, 6)),
        _ => {
            let (h, rem) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
            let (m, ns) = (rem / 60_000_000_000, rem % 60_000_000_000);
            let mut s = String::new();
            if h > 0 {
                s += &format!("{h}h");
            }
            if h > 0 || m > 0 {
                s += &format!("{m}m");
            }
            s + &format!("{}s", frac(ns, 1_000_000_000, 9))
        }
    };
    if n < 0 { format!("-{out}") } else { out }
}

/// Nanoseconds of a Go duration string (the inverse of [`go_duration`]).
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let num: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit = ["ns", "µs", "us", "ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += num
            * match unit {
                "ns" => 1.0,
                "µs" | "us" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                _ => 3600e9,
            };
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// Go's `time.Time` as `fmt` prints it (`2006-01-02 15:04:05.999999999 +0000 UTC`).
fn go_time(s: &str) -> Option<String> {
    let t = strata_image::parse_rfc3339(s)?;
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let nanos = d.subsec_nanosecond();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    Some(format!("{}{frac} +0000 UTC", d.strftime("%Y-%m-%d %H:%M:%S")))
}

/// The typed view of one `docker image inspect` object (`types.ImageInspect`).
pub fn image(v: &Json) -> Value {
    let Some(obj) = v.as_object() else {
        return crate::format::json_to_value(v);
    };
    let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    for (k, val) in obj {
        let typed = match k.as_str() {
            "RepoTags" | "RepoDigests" => field(FieldKind::StrList, Some(val)),
            "Config" | "ContainerConfig" => field(FieldKind::ConfigPtr, Some(val)),
            "RootFS" => structure(ROOTFS_FIELDS, val),
            "GraphDriver" => {
                let mut g: BTreeMap<Arc<str>, Value> = BTreeMap::new();
                g.insert(Arc::from("Data"), field(FieldKind::StrMap, val.get("Data")));
                g.insert(Arc::from("Name"), field(FieldKind::Str, val.get("Name")));
                Value::Map(Arc::new(g))
            }
            "Metadata" => {
                let t = val.get("LastTagTime").and_then(Json::as_str).unwrap_or("");
                let t = go_time(t).unwrap_or_else(|| "0001-01-01 00:00:00 +0000 UTC".into());
                let mut g: BTreeMap<Arc<str>, Value> = BTreeMap::new();
                g.insert(Arc::from("LastTagTime"), Value::String(Arc::from(t.as_str())));
                Value::Map(Arc::new(g))
            }
            _ => crate::format::json_to_value(val),
        };
        m.insert(Arc::from(k.as_str()), typed);
    }
    for &(name, kind, _) in IMAGE_OMITTED {
        m.entry(Arc::from(name)).or_insert_with(|| field(kind, None));
    }
    Value::Map(Arc::new(m))
}

/// The typed view of one `docker container inspect` object: its `Config`
/// is a `container.Config`, `Args` a slice; the rest as the JSON has it.
pub fn container(v: &Json) -> Value {
    let Some(obj) = v.as_object() else {
        return crate::format::json_to_value(v);
    };
    let m: BTreeMap<Arc<str>, Value> = obj
        .iter()
        .map(|(k, val)| {
            let typed = match k.as_str() {
                "Config" => field(FieldKind::ConfigPtr, Some(val)),
                "Args" => field(FieldKind::StrList, Some(val)),
                _ => crate::format::json_to_value(val),
            };
            (Arc::from(k.as_str()), typed)
        })
        .collect();
    Value::Map(Arc::new(m))
}

/// A container's `Config` as Docker's daemon prints it: its
/// `container.Config` with the host name, the image as named, the
/// terminal and STDIN settings, and labels as a map (never null).
pub fn container_config(rec: &strata_container::ContainerRecord) -> Json {
    let mut raw = serde_json::to_value(&rec.config).unwrap_or_default();
    if let Some(o) = raw.as_object_mut() {
        o.insert("Hostname".into(), Json::from(rec.hostname.as_str()));
        o.insert("Image".into(), Json::from(rec.image_ref.as_str()));
        o.insert("Tty".into(), Json::from(rec.tty));
        o.insert("OpenStdin".into(), Json::from(rec.stdin));
        o.insert("AttachStdin".into(), Json::from(rec.stdin));
        if o.get("Labels").is_none_or(Json::is_null) {
            o.insert("Labels".into(), Json::Object(Default::default()));
        }
    }
    strata_image::docker_inspect::docker_config(Some(&raw))
}

/// `index` on the typed view: a key a Go map does not have gives the zero
/// value of its element type (`""` for `{{index .Config.Labels "x"}}`, `{}`
/// for a port set), not a missing value.
fn typed_index(args: &[Value]) -> gotmpl::Result<Value> {
    let Some((first, keys)) = args.split_first().filter(|(_, k)| !k.is_empty()) else {
        return Err(gotmpl::TemplateError::Exec(
            "wrong number of args for index: want at least 2".into(),
        ));
    };
    let mut val = first.clone();
    for k in keys {
        let ports = |m: &BTreeMap<Arc<str>, Value>| {
            NIL_PORTS.with(|n| std::ptr::eq(&**n, m))
                || m.values()
                    .any(|v| matches!(v, Value::String(s) if PORT_STRUCT.with(|p| Arc::ptr_eq(p, s))))
        };
        val = match (&val, k) {
            (Value::Map(m), Value::String(_)) if ports(m) => {
                return Err(gotmpl::TemplateError::Exec(
                    "error calling index: value has type string; should be nat.Port".into(),
                ));
            }
            (Value::Map(m), Value::String(key)) if !m.contains_key(&**key) => {
                let set = NIL_SET.with(|n| std::ptr::eq(&**n, &**m))
                    || m.values()
                        .any(|v| matches!(v, Value::String(s) if EMPTY_STRUCT.with(|e| Arc::ptr_eq(e, s))));
                if set {
                    empty_struct()
                } else {
                    Value::String(Arc::from(""))
                }
            }
            _ => val.index(k)?,
        };
    }
    Ok(val)
}

/// Renders `src` on each object as docker does: on the typed view, else on
/// the raw JSON; a field neither has is an error.
pub fn render_each(src: &str, items: &[Json], typed: fn(&Json) -> Value) -> anyhow::Result<Vec<String>> {
    // docker's raw fallback also has missingkey=error: a field neither has
    // is an error, not `<no value>`.
    let strict = crate::format::template_with(src, gotmpl::MissingKey::Error)?.func("index", typed_index);
    items
        .iter()
        .map(|item| match strict.execute_to_string(&typed(item)) {
            // A nil pointer prints `<nil>` in Go; gotmpl prints every nil as
            // a missing value's `<no value>`, which a struct cannot have.
            Ok(s) => Ok(s.replace("<no value>", "<nil>")),
            Err(_) => crate::format::render(&strict, item),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        for (n, s) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (90_000_000_000, "1m30s"),
            (500_000_000, "500ms"),
            (2_000, "2µs"),
            (7, "7ns"),
        ] {
            assert_eq!(go_duration(n), s);
            assert_eq!(parse_go_duration(s), Some(n), "{s}");
        }
    }
}
