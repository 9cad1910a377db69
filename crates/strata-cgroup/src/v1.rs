//! The cgroup v1 devices controller: `a` to `devices.deny` (deny everything;
//! the kernel takes it only while the cgroup has no children, so right after
//! mkdir), then each rule, one write each, to `devices.allow`. A v1 child
//! may only get what its parent has; the `strata` parent inherits the
//! root's allow-all.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::{CgroupError, DeviceRule};

fn write_lines(file: &Path, lines: &[String]) -> Result<(), CgroupError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(file)
        .map_err(|e| CgroupError::io("open", file, e))?;
    for line in lines {
        // One write per rule: the kernel parses each write as one rule.
        let n = f
            .write(line.as_bytes())
            .map_err(|e| CgroupError::io("write", file, std::io::Error::other(format!("{line:?}: {e}"))))?;
        if n != line.len() {
            return Err(CgroupError::io(
                "write",
                file,
                std::io::Error::other(format!("{line:?}: short write")),
            ));
        }
    }
    Ok(())
}

/// Replaces the devices allow-list of the v1 cgroup directory `dir` by `rules`.
pub(crate) fn apply_rules(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    write_lines(&dir.join("devices.deny"), &["a".to_string()])?;
    let lines: Vec<String> = rules.iter().flat_map(DeviceRule::v1_lines).collect();
    write_lines(&dir.join("devices.allow"), &lines)
}

/// The allow-list as the kernel reports it (`devices.list`, one rule a line).
pub fn device_list(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let file = dir.join("devices.list");
    let text = std::fs::read_to_string(&file).map_err(|e| CgroupError::io("read", &file, e))?;
    Ok(text.lines().map(str::to_string).collect())
}
