//! Output as Docker prints it: sizes, tables, Go templates.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use gotmpl::{Template, Value};

/// Go's `%.{prec}g`.
fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if exp < -4 || exp >= prec as i32 {
        let s = format!("{:.*e}", prec.saturating_sub(1), v);
        // Rust prints 1e3; Go prints 1e+03.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// docker/go-units `HumanSizeWithPrecision(size, 3)`: decimal units.
/// JSON as `docker inspect` prints it: indented by four spaces (the CLI's
/// `json.Indent(…, "", "    ")`), no HTML escaping.
pub fn inspect_json<T: serde::Serialize>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// docker/go-units `HumanSizeWithPrecision`: decimal units, `prec`
/// significant digits (Go's `%.*g`).
pub fn human_size_with_precision(bytes: u64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, prec), UNITS[i])
}

/// docker/go-units `BytesSize`: binary units, 4 significant digits
/// (`548KiB`, `7.667GiB`).
pub fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(size, 4), UNITS[i])
}

/// Docker's `stringutils.Ellipsis`.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max.saturating_sub(1)].iter().collect();
    out.push('…');
    out
}

/// A tab-separated table aligned like Docker's (`tabwriter` minwidth 10, padding 3).
pub fn print_table(rows: &[Vec<String>]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut tw = tabwriter::TabWriter::new(stdout.lock()).minwidth(10).padding(3);
    for r in rows {
        writeln!(tw, "{}", r.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

pub fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::from(s.as_str())),
        serde_json::Value::Array(a) => Value::List(a.iter().map(json_to_value).collect::<Vec<_>>().into()),
        serde_json::Value::Object(o) => {
            let m: BTreeMap<Arc<str>, Value> = o
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), json_to_value(v)))
                .collect();
            Value::Map(Arc::new(m))
        }
    }
}

pub fn value_to_json(v: &Value) -> serde_json::Value {
    if let Some(j) = crate::typed::to_json(v) {
        return j;
    }
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or_default(),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        _ => serde_json::Value::Null,
    }
}

fn str_arg(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.to_string(),
        Some(v) => value_to_json(v).to_string(),
        None => String::new(),
    }
}

/// Parses a `--format` template with the functions Docker's CLI adds.
pub fn template(src: &str) -> Result<Template> {
    template_with(src, gotmpl::MissingKey::Invalid)
}

/// [`template`], with a missing key's behaviour (an error on Go structs).
pub fn template_with(src: &str, missing: gotmpl::MissingKey) -> Result<Template> {
    Template::new("format")
        .missing_key(missing)
        .func("json", |args: &[Value]| {
            let v = args.first().map(value_to_json).unwrap_or_default();
            Ok(Value::String(Arc::from(
                serde_json::to_string(&v).unwrap_or_default().as_str(),
            )))
        })
        .func("upper", |args: &[Value]| {
            Ok(Value::String(Arc::from(str_arg(args, 0).to_uppercase().as_str())))
        })
        .func("lower", |args: &[Value]| {
            Ok(Value::String(Arc::from(str_arg(args, 0).to_lowercase().as_str())))
        })
        .func("title", |args: &[Value]| {
            let s = str_arg(args, 0);
            let mut c = s.chars();
            let t = c
                .next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default();
            Ok(Value::String(Arc::from(t.as_str())))
        })
        .func("join", |args: &[Value]| {
            let sep = str_arg(args, 1);
            let parts: Vec<String> = match args.first() {
                Some(Value::List(l)) => l.iter().map(|v| str_arg(std::slice::from_ref(v), 0)).collect(),
                _ => vec![],
            };
            Ok(Value::String(Arc::from(parts.join(&sep).as_str())))
        })
        .func("split", |args: &[Value]| {
            let s = str_arg(args, 0);
            let sep = str_arg(args, 1);
            let parts: Vec<Value> = s.split(sep.as_str()).map(|p| Value::String(Arc::from(p))).collect();
            Ok(Value::List(parts.into()))
        })
        .func("truncate", |args: &[Value]| {
            let s = str_arg(args, 0);
            let n = match args.get(1) {
                Some(Value::Int(i)) => *i as usize,
                _ => s.len(),
            };
            Ok(Value::String(Arc::from(s.chars().take(n).collect::<String>().as_str())))
        })
        .parse(src)
        .map_err(|e| anyhow!("template parsing error: {e}"))
}

pub fn render(t: &Template, data: &serde_json::Value) -> Result<String> {
    t.execute_to_string(&json_to_value(data))
        .context("template execution failed")
}

/// `--format` for list commands: `table …` prints a header and aligns
/// columns; anything else prints one rendered line per item.
pub fn print_formatted(format: &str, headers: &BTreeMap<&str, &str>, items: &[serde_json::Value]) -> Result<()> {
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start().to_string()),
        None => (false, format.to_string()),
    };
    let body = body.replace("\\t", "\t");
    let t = template(&body)?;
    let mut lines = Vec::new();
    if table {
        let header_data = serde_json::Value::Object(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect(),
        );
        lines.push(render(&t, &header_data)?);
    }
    for item in items {
        lines.push(render(&t, item)?);
    }
    if table {
        let rows: Vec<Vec<String>> = lines.iter().map(|l| vec![l.clone()]).collect();
        print_table(&rows)
    } else {
        let mut out = std::io::stdout().lock();
        for l in lines {
            writeln!(out, "{l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(2_133_000), "2.13MB");
        assert_eq!(human_size(1_068_706), "1.07MB");
        assert_eq!(human_size(72_800_000), "72.8MB");
        assert_eq!(human_size(124_000_000), "124MB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }

    #[test]
    fn templates_with_docker_functions() {
        let t = template("{{.A}} {{json .B}} {{upper .A}} {{join .L \",\"}}").unwrap();
        let out = render(&t, &serde_json::json!({"A": "x", "B": {"k": 1}, "L": ["a", "b"]})).unwrap();
        assert_eq!(out, r#"x {"k":1} X a,b"#);
    }
}
