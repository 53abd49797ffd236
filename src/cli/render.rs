//! The engine's events as people and scripts see them: a progress bar and a line per target,
//! or one JSON object per event, then the summary and the exit status.

use crate::exit::ExitStatus;
use crate::hypervisors::IsoInfo;
use crate::inventory::Target;
use crate::printer::{OutputFormat, Printer};
use crate::propagate::{self, Event, Mode, Options, Outcome, Report};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::collections::HashMap;
use std::io::IsTerminal;

/// Run the engine, rendering events as they come.
pub fn execute(
    targets: &[Target],
    iso: &IsoInfo,
    opts: &Options,
    format: OutputFormat,
    printer: &Printer,
) -> Vec<Report> {
    let bars = MultiProgress::with_draw_target(
        if std::io::stderr().is_terminal() && format == OutputFormat::Human {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style =
        // wide_bar takes what the terminal leaves, so a line never wraps.
        ProgressStyle::with_template("{prefix:>16} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut active: HashMap<String, ProgressBar> = HashMap::new();
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(8);
    // status: the lines at the end, in the inventory's order (not the order hosts answer).
    let mut held: Vec<Report> = Vec::new();
    let reports = propagate::run(targets, iso, opts, |event| match format {
        OutputFormat::Json => printer.json(&event_json(&event)),
        OutputFormat::Human => match event {
            Event::Planned { host, plan } if opts.mode == Mode::DryRun => {
                let mut text = format!("{host}: {} ({})", plan.action, plan.reason);
                for step in &plan.steps {
                    text.push_str(&format!("\n    {step}"));
                }
                bars.suspend(|| printer.out(text));
            }
            Event::Bytes { host, sent, total } => {
                let bar = active.entry(host.clone()).or_insert_with(|| {
                    let bar = bars.add(ProgressBar::new(total));
                    bar.set_style(style.clone());
                    bar.set_prefix(host);
                    bar
                });
                bar.set_position(sent);
            }
            Event::Retry {
                host,
                attempt,
                error,
                delay,
            } => bars.suspend(|| {
                printer.warn(format!(
                    "{host}: attempt {attempt} failed ({}); retrying in {}s",
                    crate::printer::printable(&error),
                    delay.as_secs()
                ))
            }),
            Event::Done(report) => {
                if let Some(bar) = active.remove(&report.host) {
                    bar.finish_and_clear();
                    bars.remove(&bar);
                }
                if opts.mode == Mode::Status {
                    held.push(report);
                } else if opts.mode != Mode::DryRun || report.outcome == Outcome::Failed {
                    bars.suspend(|| printer.out(human_line(&report, opts.mode, width)));
                }
            }
            _ => {}
        },
    });
    let place = |r: &Report| targets.iter().position(|t| t.name == r.host);
    held.sort_by_key(place);
    for report in &held {
        printer.out(human_line(report, opts.mode, width));
    }
    reports
}

fn human_line(r: &Report, mode: Mode, width: usize) -> String {
    let state = match (r.outcome, mode) {
        (Outcome::Failed, Mode::Status) => "unreachable",
        (Outcome::Failed, _) => "FAILED",
        (Outcome::Current, _) => "current",
        (Outcome::Stale, _) => "stale",
        (Outcome::Updated, _) => "updated",
    };
    let detail = crate::printer::printable(r.error.as_ref().unwrap_or(&r.reason));
    format!(
        "{:width$}  {:10} {:11} {detail}",
        r.host, r.hypervisor, state
    )
}

fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Planned { host, plan } => {
            json!({"event": "plan", "host": host, "action": plan.action, "reason": plan.reason, "steps": plan.steps})
        }
        Event::Step { host, step } => json!({"event": "step", "host": host, "step": step}),
        Event::Bytes { host, sent, total } => {
            json!({"event": "bytes", "host": host, "sent": sent, "total": total})
        }
        Event::Retry {
            host,
            attempt,
            error,
            delay,
        } => {
            json!({"event": "retry", "host": host, "attempt": attempt, "error": error, "delay_seconds": delay.as_secs_f64()})
        }
        Event::Done(report) => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["event"] = json!("done");
            v
        }
    }
}

pub fn summarise(
    reports: &[Report],
    mode: Mode,
    format: OutputFormat,
    printer: &Printer,
) -> ExitStatus {
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let (current, stale, updated, failed) = (
        count(Outcome::Current),
        count(Outcome::Stale),
        count(Outcome::Updated),
        count(Outcome::Failed),
    );
    let bad = failed > 0 || (mode == Mode::Status && stale > 0);
    let exit = if bad { 1 } else { 0 };
    match format {
        OutputFormat::Json => printer.json(&json!({"event": "summary", "targets": reports.len(), "current": current, "stale": stale, "updated": updated, "failed": failed, "exit_code": exit})),
        OutputFormat::Human => printer.info(format!(
            "{} targets: {current} current, {stale} {}, {updated} updated, {failed} {}",
            reports.len(),
            if mode == Mode::DryRun { "to update" } else { "stale" },
            if mode == Mode::Status { "unreachable" } else { "failed" },
        )),
    }
    if bad {
        let names = |o: Outcome| -> String {
            let hosts: Vec<&str> = reports
                .iter()
                .filter(|r| r.outcome == o)
                .map(|r| r.host.as_str())
                .collect();
            hosts.join(", ")
        };
        let mut parts = Vec::new();
        if failed > 0 {
            let what = if mode == Mode::Status {
                "unreachable"
            } else {
                "failed"
            };
            parts.push(format!("{what}: {}", names(Outcome::Failed)));
        }
        if mode == Mode::Status && stale > 0 {
            parts.push(format!(
                "stale: {} (run systemvm propagate)",
                names(Outcome::Stale)
            ));
        }
        return ExitStatus::Partial(parts.join("; "));
    }
    ExitStatus::Success
}
