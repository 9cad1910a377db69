//! `strata stats`: Docker's live resource usage table (CONTAINER ID, NAME,
//! CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS), read from the
//! containers' cgroups. CPU % is the CPU time used between two samples a
//! second apart over the host's, times the number of CPUs (Docker's rule).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use strata_container::{ContainerRecord, Containers, Status};

#[derive(Args)]
#[command(override_usage = "strata stats [OPTIONS] [CONTAINER...]")]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    containers: Vec<String>,
}

/// One reading of a container.
#[derive(Clone)]
struct Sample {
    pid: Option<i32>,
    usage: strata_runtime::Usage,
}

fn sample(c: &Containers, rec: &ContainerRecord) -> Sample {
    let pid = match c.status(rec) {
        Status::Running { pid, .. } => Some(pid),
        _ => None,
    };
    let mut usage = pid
        .and_then(|p| strata_runtime::usage_of(p).ok().flatten())
        .unwrap_or_default();
    if let (Some(p), None) = (pid, usage.memory) {
        usage.memory = Some(resident_memory(p));
    }
    Sample { pid, usage }
}

/// Resident memory of the processes in the cgroup of `pid` (no memory
/// controller: the v1 memory cgroup is only made for `--memory`).
fn resident_memory(pid: i32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let procs = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.contains(":/strata/"))?;
            let (ctrl, path) = line.split_once(':')?.1.split_once(':')?;
            let mount = match ctrl {
                "" => "unified".to_string(),
                c => c.trim_start_matches("name=").to_string(),
            };
            std::fs::read_to_string(
                Path::new("/sys/fs/cgroup")
                    .join(mount)
                    .join(&path[1..])
                    .join("cgroup.procs"),
            )
            .ok()
        })
        .unwrap_or_else(|| pid.to_string());
    procs
        .lines()
        .filter_map(|p| {
            let statm = std::fs::read_to_string(format!("/proc/{}/statm", p.trim())).ok()?;
            statm.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum::<u64>()
        * page
}

/// All CPU time of the host, nanoseconds (`/proc/stat`'s `cpu` line), and the number of CPUs.
fn system_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u64;
    (ticks * (1_000_000_000 / hz.max(1)), cpus.max(1))
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn row(
    rec: &ContainerRecord,
    no_trunc: bool,
    before: &Sample,
    after: &Sample,
    sys_delta: u64,
    cpus: u64,
) -> Vec<String> {
    let id = if no_trunc {
        rec.id.clone()
    } else {
        rec.id[..12].to_string()
    };
    if after.pid.is_none() {
        return vec![
            id,
            rec.name.clone(),
            "0.00%".into(),
            "0B / 0B".into(),
            "0.00%".into(),
            "0B / 0B".into(),
            "0B / 0B".into(),
            "0".into(),
        ];
    }
    let u = &after.usage;
    let cpu = match (before.usage.cpu_ns, u.cpu_ns) {
        (Some(a), Some(b)) if b > a && sys_delta > 0 && before.pid == after.pid => {
            (b - a) as f64 / sys_delta as f64 * cpus as f64 * 100.0
        }
        _ => 0.0,
    };
    let host = host_memory();
    let limit = u.memory_limit.filter(|&l| host == 0 || l < host).unwrap_or(host);
    let mem = u.memory.unwrap_or(0);
    let mem_pct = if limit > 0 {
        mem as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let hs = crate::format::human_size;
    vec![
        id,
        rec.name.clone(),
        format!("{cpu:.2}%"),
        format!(
            "{} / {}",
            crate::format::bytes_size(mem),
            crate::format::bytes_size(limit)
        ),
        format!("{mem_pct:.2}%"),
        // Host or no network: nothing of the container's own to count.
        "0B / 0B".into(),
        format!("{} / {}", hs(u.io_read.unwrap_or(0)), hs(u.io_write.unwrap_or(0))),
        u.pids.unwrap_or(0).to_string(),
    ]
}

/// Go's tabwriter (minwidth 10 including the padding of 3), as Docker's table.
fn print_rows(rows: &[Vec<String>]) -> Result<()> {
    let stdout = std::io::stdout();
    let mut tw = tabwriter::TabWriter::new(stdout.lock()).minwidth(7).padding(3);
    for r in rows {
        writeln!(tw, "{}", r.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

pub fn stats(root: &Path, a: StatsArgs) -> Result<ExitCode> {
    let c = super::containers::open(root)?;
    let pick = || -> Result<Vec<ContainerRecord>> {
        if !a.containers.is_empty() {
            return a.containers.iter().map(|n| Ok(c.find(n)?)).collect();
        }
        Ok(c.list()?
            .into_iter()
            .filter(|r| a.all || c.status(r).is_running())
            .collect())
    };
    let mut recs = pick()?;
    let mut before: Vec<Sample> = recs.iter().map(|r| sample(&c, r)).collect();
    let mut sys_before = system_cpu();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let after: Vec<Sample> = recs.iter().map(|r| sample(&c, r)).collect();
        let sys_after = system_cpu();
        let sys_delta = sys_after.0.saturating_sub(sys_before.0);
        let mut rows = vec![HEADER.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        for ((rec, b), s) in recs.iter().zip(&before).zip(&after) {
            rows.push(row(rec, a.no_trunc, b, s, sys_delta, sys_after.1));
        }
        if !a.no_stream {
            // Docker's redraw: clear the screen, home the cursor.
            print!("\x1b[2J\x1b[H");
        }
        print_rows(&rows)?;
        if a.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        if a.containers.is_empty() {
            // Containers started or stopped meanwhile come and go.
            let fresh = pick()?;
            let next = fresh
                .iter()
                .map(|r| match recs.iter().position(|o| o.id == r.id) {
                    Some(i) => after[i].clone(),
                    None => sample(&c, r),
                })
                .collect();
            recs = fresh;
            before = next;
        } else {
            before = after;
        }
        sys_before = sys_after;
    }
}
