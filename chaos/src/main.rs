//! `tributary-chaos`: the chaos suite (DESIGN.md section 8).
//!
//! It will run a workload, inject one fault at a seeded random moment (SIGKILL, SIGSTOP,
//! Toxiproxy network faults, actor panics), heal, wait for the pipeline to drain and run
//! `tributary verify`. The pipeline it tests does not exist yet (issues 3 and 4), so this
//! binary only states that and exits non-zero rather than pretend to pass.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "tributary-chaos: no scenarios yet: the chaos suite needs the ingest and process \
         pipelines (issues 3 and 4) and is tracked in issue 5"
    );
    ExitCode::from(2)
}
