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
    static EMPTY_STRUCT: Arc<str> = Arc::from("{}");
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
        Value::Map(m) if NIL_MAP.with(|n| Arc::ptr_eq(n, m)) => Json::Null,
        Value::String(s) if EMPTY_STRUCT.with(|n| Arc::ptr_eq(n, s)) => Json::Object(Default::default()),
        Value::List(l) => Json::Array(l.iter().map(crate::format::value_to_json).collect()),
        Value::Map(m) => {
            let (order, omitted) = docker_struct_of(m);
            let mut keys: Vec<&str> = m.keys().map(|k| &**k).collect();
            // A Go struct marshals its fields in their declared order.
            keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.to_string(), crate::format::value_to_json(&m[k])))
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
        (FieldKind::StrMap | FieldKind::Set, _) => nil_map(),
        (FieldKind::Health, Some(v)) => structure(HEALTH_FIELDS, v),
        (FieldKind::ConfigPtr, Some(v)) => structure(CONFIG_FIELDS, v),
        (_, Some(v)) => crate::format::json_to_value(v),
        (_, None) => crate::format::json_to_value(&strata_image::docker_inspect::zero(kind)),
    }
}

/// A Go struct of `fields` from its JSON: every field, typed.
fn structure(fields: &[Field], v: &Json) -> Value {
    let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    for &(name, kind, _) in fields {
        m.insert(Arc::from(name), field(kind, v.get(name)));
    }
    Value::Map(Arc::new(m))
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

/// Renders `src` on each object as docker does: on the typed view, else on
/// the raw JSON; a field neither has is an error.
pub fn render_each(src: &str, items: &[Json], typed: fn(&Json) -> Value) -> anyhow::Result<Vec<String>> {
    // docker's raw fallback also has missingkey=error: a field neither has
    // is an error, not `<no value>`.
    let strict = crate::format::template_with(src, gotmpl::MissingKey::Error)?;
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
