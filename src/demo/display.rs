//! What the demo shows while it runs: on a terminal, one live bar per stage (fetched,
//! staged, published, in Cassandra) with its count, rate and ETA under a line naming
//! the phase; otherwise (a pipe, a file, CI) a plain line every few seconds and one per
//! phase change. Log lines at WARN and above reach the terminal above the bars; every
//! log line goes to the demo's log file (see `crate::telemetry::Logs`).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::{IsTerminal as _, Write};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// Records through the four stages the demo follows, counted by this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub fetched: u64,
    pub staged: u64,
    pub published: u64,
    pub written: u64,
}

impl Counts {
    /// This process's totals (`observe::totals`).
    pub fn now() -> Counts {
        use tributary_actors::observe::{Stage, totals};
        let totals = totals();
        Counts {
            fetched: totals[&Stage::Fetched],
            staged: totals[&Stage::Staged],
            published: totals[&Stage::Published],
            written: totals[&Stage::Written],
        }
    }

    fn by_stage(self) -> [u64; 4] {
        [self.fetched, self.staged, self.published, self.written]
    }
}

const STAGES: [&str; 4] = ["fetched", "staged", "published", "in cassandra"];

/// What the pipeline is doing, as far as the counts and the consumer's assignment say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    FirstPage,
    JoiningGroup,
    Moving,
    Draining,
    Verifying,
}

impl Phase {
    /// `assigned`: partitions this process's consumer holds.
    pub fn of(counts: Counts, assigned: usize, workload: u64) -> Phase {
        if counts.fetched == 0 {
            Phase::FirstPage
        } else if assigned == 0 && counts.written == 0 {
            Phase::JoiningGroup
        } else if counts.fetched < workload {
            Phase::Moving
        } else {
            Phase::Draining
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Phase::Starting => "starting the actor tree…",
            Phase::FirstPage => "fetching the first page…",
            Phase::JoiningGroup => "joining the consumer group (Kafka assigns the partitions)…",
            Phase::Moving => "moving users",
            Phase::Draining => "every page fetched: draining into Cassandra…",
            Phase::Verifying => "drained: verifying PostgreSQL, Kafka and Cassandra…",
        }
    }
}

/// How often the plain display prints a line when nothing else changed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The demo's display: live bars on a terminal, plain lines otherwise.
pub struct Display {
    kind: Kind,
    phase: Option<Phase>,
    started: Instant,
}

enum Kind {
    Live {
        bars: MultiProgress,
        phase: ProgressBar,
        stages: Vec<ProgressBar>,
    },
    Plain {
        workload: u64,
        printed: Option<Instant>,
    },
}

impl Display {
    /// Live bars when standard output is a terminal, plain lines otherwise.
    /// A terminal indicatif cannot draw on (TERM unset or `dumb`) gets plain lines too.
    pub fn for_stdout() -> Display {
        let target = ProgressDrawTarget::stdout_with_hz(8);
        if !std::io::stdout().is_terminal() || target.is_hidden() {
            return Display::plain();
        }
        Display {
            kind: Kind::Live {
                bars: MultiProgress::with_draw_target(target),
                phase: ProgressBar::hidden(),
                stages: Vec::new(),
            },
            phase: None,
            started: Instant::now(),
        }
    }

    /// Plain lines, wherever standard output goes (`--verbose`: log lines interleave).
    pub fn plain() -> Display {
        Display {
            kind: Kind::Plain {
                workload: 0,
                printed: None,
            },
            phase: None,
            started: Instant::now(),
        }
    }

    /// Where log lines for the terminal go: above the bars, which are redrawn after.
    pub fn log_writer(&self) -> TerminalLog {
        TerminalLog(match &self.kind {
            Kind::Live { bars, .. } => Some(bars.clone()),
            Kind::Plain { .. } => None,
        })
    }

    /// A line of its own (before the bars or after them).
    pub fn println(&self, line: &str) {
        match &self.kind {
            Kind::Live { bars, .. } => {
                let _ = bars.println(line);
            }
            Kind::Plain { .. } => println!("{line}"),
        }
    }

    /// Draws the bars for `workload` users.
    pub fn start(&mut self, workload: u64) {
        self.started = Instant::now();
        match &mut self.kind {
            Kind::Live {
                bars,
                phase,
                stages,
            } => {
                *phase = bars.add(ProgressBar::new_spinner());
                phase.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                phase.enable_steady_tick(Duration::from_millis(120));
                let style = ProgressStyle::with_template(
                    "  {prefix:>12} {bar:30} {human_pos:>7}/{human_len:7} {rate:>9}  eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}/s", state.per_sec());
                    },
                )
                .progress_chars("█▉▊▋▌▍▎▏ ");
                *stages = STAGES
                    .iter()
                    .map(|name| {
                        let bar = bars.add(ProgressBar::new(workload));
                        bar.set_style(style.clone());
                        bar.set_prefix(*name);
                        bar
                    })
                    .collect();
            }
            Kind::Plain { workload: w, .. } => *w = workload,
        }
        self.set_phase(Phase::Starting);
    }

    pub fn set_phase(&mut self, phase: Phase) {
        if self.phase == Some(phase) {
            return;
        }
        self.phase = Some(phase);
        match &self.kind {
            Kind::Live { phase: line, .. } => line.set_message(phase.describe()),
            Kind::Plain { .. } => println!(
                "demo: {:>4.0}s  {}",
                self.started.elapsed().as_secs_f64(),
                phase.describe()
            ),
        }
    }

    pub fn update(&mut self, counts: Counts) {
        let elapsed = self.started.elapsed();
        match &mut self.kind {
            Kind::Live { stages, .. } => {
                for (bar, n) in stages.iter().zip(counts.by_stage()) {
                    bar.set_position(n);
                }
            }
            Kind::Plain { workload, printed } => {
                if printed.is_some_and(|at| at.elapsed() < PLAIN_EVERY) {
                    return;
                }
                *printed = Some(Instant::now());
                println!("{}", plain_line(elapsed, counts, *workload));
            }
        }
    }

    /// The bars stay on screen with their final counts; the plain display prints them.
    pub fn finish(&mut self, counts: Counts) {
        let elapsed = self.started.elapsed();
        match &mut self.kind {
            Kind::Live { phase, stages, .. } => {
                for (bar, n) in stages.iter().zip(counts.by_stage()) {
                    bar.set_position(n);
                    bar.finish();
                }
                phase.finish_and_clear();
            }
            Kind::Plain { workload, .. } => {
                println!("{}", plain_line(elapsed, counts, *workload));
            }
        }
    }
}

/// `demo:   12s  fetched 6000/10000  staged 6000  published 5500  in cassandra 4000  (1,980/s)`
fn plain_line(elapsed: Duration, counts: Counts, workload: u64) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        counts.written as f64 / seconds
    } else {
        0.0
    };
    format!(
        "demo: {seconds:>4.0}s  fetched {}/{workload}  staged {}  published {}  in cassandra {}  ({rate:.0} users/s into Cassandra)",
        counts.fetched, counts.staged, counts.published, counts.written
    )
}

/// The terminal's log writer: each line is written with the bars hidden, then they are
/// drawn again below it.
#[derive(Clone)]
pub struct TerminalLog(Option<MultiProgress>);

/// One log line, buffered until the formatter is done with it.
pub struct LogLine {
    bars: Option<MultiProgress>,
    buffer: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let write = || {
            let _ = std::io::stderr().write_all(&self.buffer);
        };
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for TerminalLog {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            bars: self.0.clone(),
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_follows_the_counts_and_the_assignment() {
        let counts = |fetched, written| Counts {
            fetched,
            staged: fetched,
            published: fetched,
            written,
        };
        assert_eq!(Phase::of(counts(0, 0), 0, 1000), Phase::FirstPage);
        assert_eq!(Phase::of(counts(500, 0), 0, 1000), Phase::JoiningGroup);
        assert_eq!(Phase::of(counts(500, 0), 6, 1000), Phase::Moving);
        // A rebalance later in the run is not the first join.
        assert_eq!(Phase::of(counts(500, 200), 0, 1000), Phase::Moving);
        assert_eq!(Phase::of(counts(1000, 700), 6, 1000), Phase::Draining);
    }

    #[test]
    fn a_plain_line_names_every_stage() {
        let line = plain_line(
            Duration::from_secs(10),
            Counts {
                fetched: 4000,
                staged: 4000,
                published: 3500,
                written: 3000,
            },
            10_000,
        );
        assert_eq!(
            line,
            "demo:   10s  fetched 4000/10000  staged 4000  published 3500  in cassandra 3000  (300 users/s into Cassandra)"
        );
    }
}
