//! `tributary-chaos`: the chaos suite (DESIGN.md section 8).
//!
//! It will run a workload, inject one fault at a seeded random moment (SIGKILL, SIGSTOP,
//! Toxiproxy network faults, actor panics), heal, wait for the pipeline to drain and run
//! `tributary verify`. Not built yet (issue 5): this binary says so and exits non-zero
//! rather than pretend to pass.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("tributary-chaos: no scenarios yet: the chaos suite is tracked in issue 5");
    ExitCode::from(2)
}
