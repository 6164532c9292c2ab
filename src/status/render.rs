//! `tributary status` as text: the tables it prints from a [`Status`].

use super::Status;
use tributary_actors::observe::{ConsumptionStatus, Stage};

/// Renders a status as the tables `tributary status` prints.
pub fn render(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "instance {}  version {}  up {}s  {}  lag {}",
        status.instance,
        status.version,
        status.uptime_s,
        if status.leader { "leader" } else { "follower" },
        status.lag
    );
    out.push_str("\nACTOR TREE\n");
    match &status.tree {
        Some(tree) => render_tree(&mut out, tree, 0),
        None => out.push_str("  (not running)\n"),
    }
    render_consumption(&mut out, &status.consumption);
    out.push_str("\nPARTITIONS\n");
    let _ = writeln!(
        out,
        "  {:>9} {:>6} {:>12} {:>12} {:>8} {:>10} {:>8} {:>10} {:>6}",
        "partition",
        "epoch",
        "committed",
        "end",
        "lag",
        "in-flight",
        "batches",
        "written",
        "backpressured"
    );
    if status.partitions.is_empty() {
        out.push_str("  (none owned by this instance)\n");
    }
    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for p in &status.partitions {
        let _ = writeln!(
            out,
            "  {:>9} {:>6} {:>12} {:>12} {:>8} {:>10} {:>8} {:>10} {:>6}",
            p.partition,
            dash(p.owner_epoch),
            dash(p.committed_offset),
            dash(p.end_offset),
            dash(p.lag),
            p.in_flight_records,
            p.in_flight_batches,
            p.written,
            if p.backpressured { "yes" } else { "no" }
        );
    }
    out.push_str("\nSTAGES\n");
    let _ = writeln!(out, "  {:<14} {:>12} {:>10}", "stage", "records", "per s");
    for stage in Stage::ALL {
        let name = stage.name();
        let _ = writeln!(
            out,
            "  {:<14} {:>12} {:>10.1}",
            name,
            status.records.get(name).copied().unwrap_or(0),
            status.throughput.get(name).copied().unwrap_or(0.0)
        );
    }
    render_runs(&mut out, status);
    render_reconciliation(&mut out, status);
    out.push_str("\nRESTARTS\n");
    let _ = writeln!(
        out,
        "  {:<12} {:>8} {:>8}  last error",
        "actor", "restarts", "failures"
    );
    if status.restarts.is_empty() {
        out.push_str("  (none)\n");
    }
    for (kind, r) in &status.restarts {
        let _ = writeln!(
            out,
            "  {:<12} {:>8} {:>8}  {}",
            kind,
            r.restarts,
            r.failures,
            r.last_error.as_deref().unwrap_or("-")
        );
    }
    out
}

fn render_consumption(out: &mut String, c: &ConsumptionStatus) {
    use std::fmt::Write as _;
    out.push_str("\nCONSUMPTION\n");
    match &c.not_consuming {
        Some(n) => {
            let _ = writeln!(out, "  NOT CONSUMING: {}", n.reason);
        }
        None if c.checked_at_ms.is_some() => out.push_str("  consuming (or idle)\n"),
        None => out.push_str("  not checked yet\n"),
    }
    if let Some(error) = &c.error {
        let _ = writeln!(out, "  last check failed: {error}");
    }
    if let Some(g) = &c.group {
        let _ = writeln!(
            out,
            "  group {}/{}, {} partition(s) assigned here, {} rebalance(s){}",
            g.state,
            g.join_state,
            c.assigned,
            g.rebalances,
            if g.reason.is_empty() {
                String::new()
            } else {
                format!(", last: {}", g.reason)
            }
        );
    }
    let _ = writeln!(
        out,
        "  stalls {}  consumer rebuilds {}  topic lag {}",
        c.stalls, c.rebuilds, c.lag
    );
    let _ = writeln!(
        out,
        "  {:>9} {:>12} {:>12} {:>8} {:>8} {:>8}  owner",
        "partition", "committed", "end", "lag", "idle s", "here"
    );
    for p in &c.topic {
        let _ = writeln!(
            out,
            "  {:>9} {:>12} {:>12} {:>8} {:>8} {:>8}  {}{}",
            p.partition,
            p.committed_offset
                .map_or_else(|| "-".to_owned(), |o| o.to_string()),
            p.end_offset,
            p.lag,
            p.idle_ms / 1_000,
            if p.assigned { "yes" } else { "no" },
            p.owner.as_deref().unwrap_or("-"),
            if p.stalled { "  STALLED" } else { "" }
        );
    }
}

fn render_runs(out: &mut String, status: &Status) {
    use std::fmt::Write as _;
    out.push_str("\nRUNS\n");
    let Some(runs) = &status.runs else {
        out.push_str("  (the runs ledger cannot be read)\n");
        return;
    };
    let recent = &runs.recent;
    let _ = writeln!(
        out,
        "  pending {}  retrying {}  failed {}  |  last {} min: staged {}, repeated {}",
        runs.pending,
        runs.retrying,
        runs.failed,
        recent.window_s / 60,
        recent.staged,
        recent.repeated
    );
    if runs.failed > 0 {
        out.push_str(
            "  failed runs wait for an operator: `tributary runs --status failed`, then \
             `tributary runs retry --failed`\n",
        );
    }
    for run in &runs.attention {
        let when = run
            .next_attempt_at
            .map(|t| format!("next attempt {}", t.format("%H:%M:%S")))
            .unwrap_or_else(|| "gave up".into());
        let _ = writeln!(
            out,
            "  run {} {} (seed {} page {}): {} retries, {when}: {}",
            run.run_id,
            run.status,
            run.seed.as_deref().unwrap_or("-"),
            run.page.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            run.retries,
            run.last_error.as_deref().unwrap_or("-")
        );
    }
    if let Some(last) = &recent.last_repeat {
        let _ = writeln!(
            out,
            "  WARNING: the source served already staged users again in {} run(s) of the last \
             {} min; last: run {} seed {} page {} ({} users)",
            recent.repeated,
            recent.window_s / 60,
            last.run_id,
            last.seed.as_deref().unwrap_or("-"),
            last.page.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            last.repeated_users
        );
    }
}

fn render_reconciliation(out: &mut String, status: &Status) {
    use std::fmt::Write as _;
    out.push_str("\nRECONCILIATION\n");
    let Some(r) = &status.reconciliation else {
        out.push_str("  (the runs ledger cannot be read)\n");
        return;
    };
    let failed = |kind: &str| r.failed_runs.get(kind).copied().unwrap_or(0);
    let aggregates = match &r.aggregates {
        None => "not checked yet".to_owned(),
        Some(a) if a.ok => format!("equal at {}", a.checked_at.format("%H:%M:%S")),
        Some(a) => format!(
            "DIFFER at {}: {}",
            a.checked_at.format("%H:%M:%S"),
            a.detail.as_deref().unwrap_or("-")
        ),
    };
    let _ = writeln!(
        out,
        "  unreconciled {}  |  failed runs: missing {}, duplicated {}, unexpected {}  |  aggregates {aggregates}",
        r.unreconciled,
        failed("missing"),
        failed("duplicated"),
        failed("unexpected"),
    );
    for run in &r.failures {
        let _ = writeln!(
            out,
            "  ALERT: run {} (seed {} page {}, {} users) {} at {}: `tributary verify --runs {}..{}` names them",
            run.run_id,
            run.seed.as_deref().unwrap_or("-"),
            run.page.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            run.staged_users,
            run.result,
            run.reconciled_at.format("%Y-%m-%d %H:%M:%S"),
            run.run_id,
            run.run_id
        );
    }
}

fn render_tree(out: &mut String, node: &serde_json::Value, depth: usize) {
    use std::fmt::Write as _;
    let field = |k: &str| node.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    let restarts = node.get("restarts").and_then(|v| v.as_u64()).unwrap_or(0);
    let mut line = format!(
        "  {}{} ({}) {}",
        "  ".repeat(depth),
        field("name"),
        field("kind"),
        field("state")
    );
    if restarts > 0 {
        let _ = write!(line, ", {restarts} restart(s)");
    }
    if let Some(error) = node.get("last_error").and_then(|v| v.as_str()) {
        let _ = write!(line, ", last error: {error}");
    }
    out.push_str(&line);
    out.push('\n');
    if let Some(children) = node.get("children").and_then(|v| v.as_array()) {
        for child in children {
            render_tree(out, child, depth + 1);
        }
    }
}
