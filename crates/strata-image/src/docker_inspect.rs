//! `docker image inspect`'s object as Docker 20.10 prints it: every field of
//! its Go structs (`types.ImageInspect`, `container.Config`,
//! `container.HealthConfig`, `types.RootFS`), each as the daemon marshals it
//! after reading the image's config into those structs: fields tagged
//! `omitempty` are left out when empty, the others are always there (a nil
//! slice or map as `null`, an unset string as `""`). Fields Docker does not
//! know are dropped.

use serde_json::{Map, Value, json};

/// How a field of a Docker struct is typed, for its zero value and whether
/// `omitempty` drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `string`
    Str,
    /// `bool`
    Bool,
    /// `int`/`int64`/`time.Duration`
    Int,
    /// `[]string`
    StrList,
    /// `strslice.StrSlice`: a list, or a lone string read as a list of one
    StrSlice,
    /// `map[string]string`
    StrMap,
    /// `map[string]struct{}` (ports, volumes): each value `{}`
    Set,
    /// `*HealthConfig`
    Health,
    /// `*int`
    IntPtr,
    /// `*container.Config`
    ConfigPtr,
}

/// One field: its name, type and whether it is `omitempty`.
pub type Field = (&'static str, FieldKind, bool);

/// `container.Config` (api/types/container/config.go, v20.10), in order.
pub const CONFIG_FIELDS: &[Field] = &[
    ("Hostname", FieldKind::Str, false),
    ("Domainname", FieldKind::Str, false),
    ("User", FieldKind::Str, false),
    ("AttachStdin", FieldKind::Bool, false),
    ("AttachStdout", FieldKind::Bool, false),
    ("AttachStderr", FieldKind::Bool, false),
    ("ExposedPorts", FieldKind::Set, true),
    ("Tty", FieldKind::Bool, false),
    ("OpenStdin", FieldKind::Bool, false),
    ("StdinOnce", FieldKind::Bool, false),
    ("Env", FieldKind::StrList, false),
    ("Cmd", FieldKind::StrSlice, false),
    ("Healthcheck", FieldKind::Health, true),
    ("ArgsEscaped", FieldKind::Bool, true),
    ("Image", FieldKind::Str, false),
    ("Volumes", FieldKind::Set, false),
    ("WorkingDir", FieldKind::Str, false),
    ("Entrypoint", FieldKind::StrSlice, false),
    ("NetworkDisabled", FieldKind::Bool, true),
    ("MacAddress", FieldKind::Str, true),
    ("OnBuild", FieldKind::StrList, false),
    ("Labels", FieldKind::StrMap, false),
    ("StopSignal", FieldKind::Str, true),
    ("StopTimeout", FieldKind::IntPtr, true),
    ("Shell", FieldKind::StrSlice, true),
];

/// `container.HealthConfig` (every field `omitempty`).
pub const HEALTH_FIELDS: &[Field] = &[
    ("Test", FieldKind::StrList, true),
    ("Interval", FieldKind::Int, true),
    ("Timeout", FieldKind::Int, true),
    ("StartPeriod", FieldKind::Int, true),
    ("Retries", FieldKind::Int, true),
];

/// `types.RootFS`.
pub const ROOTFS_FIELDS: &[Field] = &[
    ("Type", FieldKind::Str, false),
    ("Layers", FieldKind::StrList, true),
    ("BaseLayer", FieldKind::Str, true),
];

/// The `omitempty` fields of `types.ImageInspect` (the others are always
/// printed; see [`crate::inspect`]).
pub const IMAGE_OMITTED: &[Field] = &[("Variant", FieldKind::Str, true), ("OsVersion", FieldKind::Str, true)];

/// The zero value of a field as Go has it before marshalling (`null` for
/// nil slices, maps and pointers).
pub fn zero(kind: FieldKind) -> Value {
    match kind {
        FieldKind::Str => json!(""),
        FieldKind::Bool => json!(false),
        FieldKind::Int => json!(0),
        _ => Value::Null,
    }
}

/// Whether `omitempty` drops `v` (Go: false, 0, "", nil, or an empty
/// slice or map).
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A value read into a field of `kind` (as Go's JSON decoder would: a
/// mistyped value is the zero value).
fn typed(kind: FieldKind, v: Option<&Value>) -> Value {
    let v = match v {
        None | Some(Value::Null) => return zero(kind),
        Some(v) => v,
    };
    let strings = |a: &Vec<Value>| Value::Array(a.iter().filter(|s| s.is_string()).cloned().collect());
    match (kind, v) {
        (FieldKind::Str, Value::String(_)) | (FieldKind::Bool, Value::Bool(_)) | (FieldKind::Int, Value::Number(_)) => {
            v.clone()
        }
        (FieldKind::IntPtr, Value::Number(_)) => v.clone(),
        (FieldKind::StrList | FieldKind::StrSlice, Value::Array(a)) => strings(a),
        (FieldKind::StrSlice, Value::String(s)) => json!([s]),
        (FieldKind::StrMap, Value::Object(o)) => Value::Object(
            o.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        (FieldKind::Set, Value::Object(o)) => Value::Object(o.keys().map(|k| (k.clone(), json!({}))).collect()),
        (FieldKind::Health, Value::Object(_)) => docker_struct(HEALTH_FIELDS, Some(v)),
        (FieldKind::ConfigPtr, Value::Object(_)) => docker_config(Some(v)),
        _ => zero(kind),
    }
}

/// A Go struct of `fields` read from `raw` (a JSON object; keys matched
/// case-insensitively, as Go's decoder does) and marshalled again.
pub fn docker_struct(fields: &[Field], raw: Option<&Value>) -> Value {
    let obj = raw.and_then(Value::as_object);
    let get = |name: &str| -> Option<&Value> {
        let o = obj?;
        o.get(name)
            .or_else(|| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
    let mut out = Map::new();
    for &(name, kind, omitempty) in fields {
        let v = typed(kind, get(name));
        if omitempty && is_empty(&v) {
            continue;
        }
        out.insert(name.to_string(), v);
    }
    Value::Object(out)
}

/// `*container.Config` as Docker prints it: `null` when the image has none.
pub fn docker_config(raw: Option<&Value>) -> Value {
    match raw {
        Some(v @ Value::Object(_)) => docker_struct(CONFIG_FIELDS, Some(v)),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_as_docker_marshals_it() {
        let raw = json!({"Env": ["A=1"], "Cmd": "sh", "StopSignal": "", "ArgsEscaped": false,
                         "ExposedPorts": {"80/tcp": {}}, "Labels": null, "Unknown": 1,
                         "Healthcheck": {"Test": ["CMD", "true"], "Interval": 0, "Retries": 3}});
        let c = docker_config(Some(&raw));
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(!keys.contains(&"StopSignal") && !keys.contains(&"ArgsEscaped") && !keys.contains(&"Unknown"));
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Labels"], Value::Null);
        assert_eq!(c["Volumes"], Value::Null);
        assert_eq!(c["Hostname"], "");
        assert_eq!(c["Healthcheck"], json!({"Test": ["CMD", "true"], "Retries": 3}));
        assert_eq!(docker_config(None), Value::Null);
        assert_eq!(docker_struct(CONFIG_FIELDS, None).as_object().unwrap().len(), 17);
    }
}
