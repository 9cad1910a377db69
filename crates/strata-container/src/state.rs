//! A container's state as its records say it: running or exited, since
//! when, its restarts and why the last one failed, the OOM killer. A
//! foreground run's record (`foreground.json`) wins over the detached
//! monitor's (`state.json`).

use strata_runtime::State;

use crate::engine::{FOREGROUND, Foreground, read_json};
use crate::{ContainerRecord, Containers, Status};

impl Containers {
    pub fn status(&self, rec: &ContainerRecord) -> Status {
        let dir = self.state_dir(&rec.id);
        if let Some(fg) = read_json::<Foreground>(&dir.join(FOREGROUND)) {
            return match fg.exit_code {
                Some(code) => Status::Exited {
                    code,
                    finished_at: fg.finished_at.unwrap_or_default(),
                },
                None if strata_runtime::process_start_time(fg.pid) == Some(fg.start_time) => Status::Running {
                    pid: fg.pid,
                    started_at: fg.started_at,
                },
                None => Status::Exited {
                    code: strata_runtime::EXIT_UNKNOWN,
                    finished_at: String::new(),
                },
            };
        }
        if !dir.join("state.json").exists() {
            return Status::Created;
        }
        let started_at = strata_runtime::read_state_record(&dir)
            .map(|r| r.started_at)
            .unwrap_or_default();
        match strata_runtime::state(&dir) {
            Ok(State::Running { pid }) => Status::Running { pid, started_at },
            Ok(State::Exited { code, finished_at }) => Status::Exited { code, finished_at },
            Err(_) => Status::Exited {
                code: strata_runtime::EXIT_UNKNOWN,
                finished_at: String::new(),
            },
        }
    }

    pub fn started_at(&self, rec: &ContainerRecord) -> Option<String> {
        if let Some(fg) = read_json::<Foreground>(&self.state_dir(&rec.id).join(FOREGROUND)) {
            return Some(fg.started_at);
        }
        strata_runtime::read_state_record(&self.state_dir(&rec.id))
            .ok()
            .map(|r| r.started_at)
    }

    /// How many times the restart policy has restarted the container.
    pub fn restart_count(&self, rec: &ContainerRecord) -> u32 {
        strata_runtime::read_state_record(&self.state_dir(&rec.id)).map_or(0, |r| r.restart_count)
    }

    /// Why the last restart of the container did not start (Docker's
    /// `State.Error`), empty when it did.
    pub fn start_error(&self, rec: &ContainerRecord) -> String {
        strata_runtime::read_state_record(&self.state_dir(&rec.id))
            .ok()
            .and_then(|r| r.error)
            .unwrap_or_default()
    }

    /// Whether the kernel's OOM killer killed a process of the container's last run.
    pub fn oom_killed(&self, rec: &ContainerRecord) -> bool {
        if let Some(fg) = read_json::<Foreground>(&self.state_dir(&rec.id).join(FOREGROUND)) {
            return fg.oom_killed;
        }
        strata_runtime::read_state_record(&self.state_dir(&rec.id)).is_ok_and(|r| r.oom_killed)
    }
}
