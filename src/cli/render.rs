//! The engine's events as people and scripts see them, for `propagate`, `status` and
//! `startup` alike: one JSON record per event (the schema in [`crate::events`]), or for
//! people either live progress bars with one aligned line per target, or one log line per
//! event (the start hook, for journald). Then the summary and the exit status.

use crate::events::{self, Record, Summary};
use crate::exit::ExitStatus;
use crate::hypervisors::IsoInfo;
use crate::inventory::Target;
use crate::printer::{printable, OutputFormat, Printer};
use crate::propagate::{self, Event, Mode, Options, Outcome, Report};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;

/// How people see the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Progress bars on a terminal, then one aligned line per target.
    Live,
    /// One line per event, as the start hook logs them.
    Log,
}

/// Turns events into output as they come.
pub struct Renderer<'p> {
    printer: &'p Printer,
    format: OutputFormat,
    style: Style,
    mode: Mode,
    bars: MultiProgress,
    bar_style: ProgressStyle,
    active: HashMap<String, ProgressBar>,
    width: usize,
    /// `status`: the lines wait for the end, to be printed in the inventory's order.
    held: Vec<Report>,
}

impl<'p> Renderer<'p> {
    pub fn new(
        targets: &[Target],
        mode: Mode,
        format: OutputFormat,
        style: Style,
        printer: &'p Printer,
    ) -> Self {
        let live = format == OutputFormat::Human && style == Style::Live;
        let bar_style = ProgressStyle::with_template(
            // wide_bar takes what the terminal leaves, so a line never wraps.
            "{prefix:>16} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        Renderer {
            printer,
            format,
            style,
            mode,
            bars: MultiProgress::with_draw_target(printer.draw_target(live)),
            bar_style,
            active: HashMap::new(),
            width: targets.iter().map(|t| t.name.len()).max().unwrap_or(8),
            held: Vec::new(),
        }
    }

    pub fn event(&mut self, event: Event) {
        match (self.format, self.style) {
            (OutputFormat::Json, _) => self.printer.record(&record(&event)),
            (OutputFormat::Human, Style::Live) => self.live(event),
            (OutputFormat::Human, Style::Log) => self.log(&event),
        }
    }

    fn live(&mut self, event: Event) {
        match event {
            Event::Planned { host, plan, .. } if self.mode == Mode::DryRun => {
                let mut text = format!("{host}: {} ({})", plan.action, plan.reason);
                for step in &plan.steps {
                    text.push_str(&format!("\n    {step}"));
                }
                self.bars.suspend(|| self.printer.out(text));
            }
            Event::Bytes {
                host, sent, total, ..
            } => {
                let bar = self.active.entry(host.clone()).or_insert_with(|| {
                    let bar = self.bars.add(ProgressBar::new(total));
                    bar.set_style(self.bar_style.clone());
                    bar.set_prefix(host);
                    bar
                });
                bar.set_position(sent);
            }
            Event::Retry { .. } => self.bars.suspend(|| self.log(&event)),
            Event::Done(report) => {
                if let Some(bar) = self.active.remove(&report.host) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                if self.mode == Mode::Status {
                    self.held.push(report);
                } else if self.mode != Mode::DryRun || report.outcome == Outcome::Failed {
                    let line = aligned_line(&report, self.mode, self.width, self.printer.wraps());
                    self.bars.suspend(|| self.printer.out(line));
                }
            }
            Event::Planned { .. } | Event::Step { .. } => {}
        }
    }

    /// The held `status` lines, in the order of `targets` (not the order hosts answered).
    pub fn finish(mut self, targets: &[Target]) {
        self.held
            .sort_by_key(|r| targets.iter().position(|t| t.name == r.host));
        for report in &self.held {
            let line = aligned_line(report, self.mode, self.width, self.printer.wraps());
            self.printer.out(line);
        }
    }

    fn log(&self, event: &Event) {
        let printer = self.printer;
        match event {
            Event::Planned { host, plan, .. } => {
                printer.info(format!("{host}: plan {} ({})", plan.action, plan.reason))
            }
            Event::Step { host, step, .. } => printer.info(format!("{host}: {step}")),
            Event::Bytes { .. } => {}
            Event::Retry {
                host,
                attempt,
                error,
                delay,
                ..
            } => printer.warn(format!(
                "{host}: attempt {attempt} failed ({}); retrying in {}s",
                printable(error),
                delay.as_secs()
            )),
            Event::Done(r) => {
                let line = format!(
                    "{}: {} ({}) in {:.1}s",
                    r.host,
                    state(r.outcome, self.mode),
                    detail(r),
                    r.seconds
                );
                if r.outcome == Outcome::Failed {
                    printer.warn(line);
                } else {
                    printer.info(line);
                }
            }
        }
    }
}

/// Run the engine, rendering events as they come.
pub fn execute(
    targets: &[Target],
    iso: &IsoInfo,
    opts: &Options,
    format: OutputFormat,
    printer: &Printer,
) -> Vec<Report> {
    let mut renderer = Renderer::new(targets, opts.mode, format, Style::Live, printer);
    let reports = propagate::run(targets, iso, opts, |event| renderer.event(event));
    renderer.finish(targets);
    reports
}

/// The word for how a target ended.
fn state(outcome: Outcome, mode: Mode) -> &'static str {
    match (outcome, mode) {
        (Outcome::Failed, Mode::Status) => "unreachable",
        (Outcome::Failed, _) => "FAILED",
        (outcome, _) => outcome.as_str(),
    }
}

fn detail(r: &Report) -> String {
    printable(r.error.as_ref().unwrap_or(&r.reason))
}

/// A target's result as a row: name, kind, state, detail. With `wrap`, a row too long for
/// 80 columns keeps its aligned head, and its detail goes on in lines indented by four.
fn aligned_line(r: &Report, mode: Mode, width: usize, wrap: bool) -> String {
    let head = format!(
        "{:width$}  {:10} {:11} ",
        r.host,
        r.hypervisor,
        state(r.outcome, mode)
    );
    let detail = detail(r);
    let used = head.chars().count();
    if !wrap || used + detail.chars().count() <= COLUMNS {
        return head + &detail;
    }
    // The detail starts after the head (or below it, when the head leaves too little room).
    let (lead, mut lines) = if used <= COLUMNS - 20 {
        (used, Vec::new())
    } else {
        (4, vec![head.trim_end().to_string()])
    };
    let mut rest = crate::printer::wrap(&format!("{:lead$}{detail}", ""), 4, COLUMNS);
    if lines.is_empty() {
        if let Some(first) = rest.first_mut() {
            first.replace_range(..lead, &head);
        }
    }
    lines.append(&mut rest);
    lines.join("\n")
}

/// The width result rows fit, as `doctor`'s do.
const COLUMNS: usize = 80;

fn record(event: &Event) -> Record<'_> {
    match event {
        Event::Planned { host, plan, kind } => Record::plan(host, *kind, plan),
        Event::Step { host, step, kind } => Record::Step {
            target: host,
            kind: kind.as_str(),
            step,
        },
        Event::Bytes {
            host,
            sent,
            total,
            kind,
        } => Record::Bytes {
            target: host,
            kind: kind.as_str(),
            sent: *sent,
            total: *total,
        },
        Event::Retry {
            host,
            kind,
            attempt,
            error,
            cause,
            delay,
        } => Record::Retry {
            target: host,
            kind: kind.as_str(),
            attempt: *attempt,
            error,
            cause: *cause,
            delay_seconds: delay.as_secs_f64(),
        },
        Event::Done(report) => Record::target_done(report),
    }
}

/// The summary line (or record) and the exit status: 1 when a target failed, or in
/// `status` when one is stale.
pub fn summarise(
    reports: &[Report],
    mode: Mode,
    format: OutputFormat,
    printer: &Printer,
) -> ExitStatus {
    use Outcome::{Current, Failed, Stale, Updated};
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let counts = [Current, Stale, Updated, Failed].map(|o| (o.as_str(), count(o)));
    let [current, stale, updated, failed] = counts.map(|(_, n)| n);
    let bad = failed > 0 || (mode == Mode::Status && stale > 0);
    let command = match mode {
        Mode::Status => events::Command::Status,
        Mode::DryRun | Mode::Apply => events::Command::Propagate,
    };
    // "unreachable" in `status`, else "failed".
    let failed_word = state(Failed, mode).to_lowercase();
    match format {
        OutputFormat::Json => {
            let summary = Summary::new(command, reports.len(), &counts, u8::from(bad));
            printer.record(&Record::Summary(summary));
        }
        OutputFormat::Human => {
            let stale_word = if mode == Mode::DryRun {
                "to update"
            } else {
                "stale"
            };
            printer.info(format!(
                "{} targets: {current} current, {stale} {stale_word}, {updated} updated, \
                 {failed} {failed_word}",
                reports.len()
            ))
        }
    }
    if !bad {
        return ExitStatus::Success;
    }
    let names = |o: Outcome| {
        let hosts = reports.iter().filter(|r| r.outcome == o);
        hosts
            .map(|r| r.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!("{failed_word}: {}", names(Failed)));
    }
    if mode == Mode::Status && stale > 0 {
        parts.push(format!("stale: {} (run systemvm propagate)", names(Stale)));
    }
    ExitStatus::Partial(parts.join("; "))
}

/// The JSON of a command about one artifact (`build`, `inject`, `inspect`): its record, then
/// a summary of one, counted under `outcome`.
pub fn artifact(
    printer: &Printer,
    path: &std::path::Path,
    kind: events::ArtifactKind,
    details: &impl serde::Serialize,
    outcome: &'static str,
) {
    printer.record(&Record::artifact(path, kind, details));
    let summary = Summary::new(kind.command(), 1, &[(outcome, 1)], 0);
    printer.record(&Record::Summary(summary));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, reason: &str) -> Report {
        Report {
            host: host.into(),
            hypervisor: crate::kind::Hypervisor::Kvm,
            outcome: Outcome::Updated,
            action: None,
            reason: reason.into(),
            steps: Vec::new(),
            error: None,
            cause: None,
            attempts: 1,
            seconds: 0.0,
        }
    }

    #[test]
    fn a_row_that_fits_stays_aligned_and_a_long_one_goes_on_below() {
        let short = aligned_line(&report("kvm-01", "ISO up to date"), Mode::Apply, 8, true);
        assert_eq!(short, "kvm-01    kvm        updated     ISO up to date");

        let reason = "/usr/share/cloudstack-common/vms/systemvm.iso is absent on this host";
        for name in ["a-rather-long-kvm-host-name-in-zone-one", &"h".repeat(70)] {
            let long = aligned_line(&report(name, reason), Mode::Apply, name.len(), true);
            let piped = aligned_line(&report(name, reason), Mode::Apply, name.len(), false);
            assert_eq!(piped.lines().count(), 1, "into a pipe a row stays one line");
            assert!(piped.ends_with(reason), "{piped}");
            let lines: Vec<&str> = long.lines().collect();
            assert!(lines[0].starts_with(&format!("{name}  kvm        updated")));
            // Only a head that is itself too long (a 70-character name) may overflow.
            let fits = |l: &&str| l.chars().count() <= COLUMNS;
            assert!(lines[1..].iter().all(fits), "{long}");
            assert_eq!(fits(&lines[0]), name.len() < 50, "{long}");
            assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{long}");
            let words: Vec<&str> = long.split_whitespace().skip(3).collect();
            assert_eq!(words.join(" "), reason);
        }
    }
}
