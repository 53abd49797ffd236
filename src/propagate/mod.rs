//! The propagation engine: for each target, connect, plan, and (unless it only looks)
//! carry out the plan's steps, with bounded concurrency, retries with backoff for
//! transient failures, and a report per target.
//!
//! Workers are plain threads pulling targets from a shared index (at most `jobs` at once,
//! one connection each); every step and outcome is sent as an [`Event`] to the caller's
//! thread, which alone writes output. A strategy decides *what* to do; this module decides
//! *when*, *how often* and *how it is reported*. Management targets (the management
//! server's own copy) are done first, then the others.
//!
//! An optional overall deadline bounds a run: once it passes no target is started and no
//! retry is made; a target in flight connects and transfers with at most the time left as
//! its timeouts, and an SSH upload still streaming at the deadline is cut, so it ends near
//! the deadline (a copy to a local directory is not cut). Every target not done by then is
//! reported failed with "deadline reached". Uploads go to a temp name first, so a target
//! cut short keeps its old ISO.

mod connect;

pub use connect::connect;

use crate::dblock::{DbConfig, DbLock};
use crate::hypervisors::patch::{PatchFiles, PatchSet};
use crate::hypervisors::{self, Action, Extras, IsoInfo, Look, Plan, Strategy};
use crate::inventory::Place;
use crate::inventory::{Inventory, Target};
use crate::kind::Hypervisor;
use crate::transport::{Cause, TransportError};
use crate::version::Version;

use std::path::PathBuf;

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest wait between two attempts, however many retries are asked for.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the engine is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plan only, and report current / stale / unreachable.
    Status,
    /// Plan only, and print the steps a real run would take.
    DryRun,
    /// Plan and apply.
    Apply,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub jobs: usize,
    pub force: bool,
    /// Hash each target's file whatever its marker or tag says.
    pub verify: bool,
    /// The management server's release, when known: it names VMware and Hyper-V files.
    pub cloudstack: Option<Version>,
    /// CloudStack's database: its lock is held around secondary-storage writes.
    pub db: Option<DbConfig>,
    pub known_hosts: PathBuf,
    pub accept_new: bool,
    pub connect_timeout: Duration,
    pub transfer_timeout: Duration,
    pub retries: u32,
    /// First retry delay; doubled each time.
    pub backoff: Duration,
    pub extras: Extras,
    /// Push CloudStack 4.17+ patch files instead of the ISO.
    pub patch: Option<PatchSet>,
    /// Bound on the whole run, from the call to [`run`].
    pub deadline: Option<Duration>,
}

/// The error of a target that the overall deadline cut short or never let start.
pub const DEADLINE_REACHED: &str = "deadline reached";

impl Options {
    pub fn from_inventory(inv: &Inventory, mode: Mode) -> Options {
        Options {
            mode,
            jobs: 16,
            force: false,
            verify: false,
            cloudstack: None,
            db: None,
            known_hosts: inv.known_hosts.clone(),
            accept_new: false,
            connect_timeout: inv.connect_timeout,
            transfer_timeout: inv.transfer_timeout,
            retries: inv.retries,
            backoff: Duration::from_secs(1),
            extras: Extras::default(),
            patch: None,
            deadline: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Current,
    /// Needs a push (status) or would get one (dry run).
    Stale,
    /// Steps carried out.
    Updated,
    /// Could not be reached or changed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Current => "current",
            Outcome::Stale => "stale",
            Outcome::Updated => "updated",
            Outcome::Failed => "failed",
        }
    }
}

/// The end of one target's run.
#[derive(Debug, Clone)]
pub struct Report {
    pub host: String,
    pub hypervisor: Hypervisor,
    pub outcome: Outcome,
    pub action: Option<Action>,
    pub reason: String,
    pub steps: Vec<String>,
    pub error: Option<String>,
    /// The kind of failure (`timeout`, `connection-lost`, `connect`, `auth`, ...), from
    /// [`TransportError::cause`]; `other` for failures outside the transport.
    pub cause: Option<Cause>,
    pub attempts: u32,
    pub seconds: f64,
}

/// What happens, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    Planned {
        host: String,
        kind: Hypervisor,
        plan: Plan,
    },
    Step {
        host: String,
        kind: Hypervisor,
        step: String,
    },
    Bytes {
        host: String,
        kind: Hypervisor,
        sent: u64,
        total: u64,
    },
    Retry {
        host: String,
        kind: Hypervisor,
        attempt: u32,
        error: String,
        cause: Cause,
        delay: Duration,
    },
    Done(Report),
}

/// Run every target; `on_event` is called on this thread for each event.
pub fn run(
    targets: &[Target],
    iso: &IsoInfo,
    opts: &Options,
    mut on_event: impl FnMut(Event),
) -> Vec<Report> {
    let deadline = opts.deadline.map(|d| Instant::now() + d);
    // The management server's own copy first: CloudStack copies it to VMware and Hyper-V
    // storage itself, so once it is ours, every copy CloudStack makes is ours too.
    let (own, others): (Vec<Target>, Vec<Target>) = targets
        .iter()
        .cloned()
        .partition(|t| t.hypervisor == Hypervisor::Management);
    let mut reports = pool(&own, iso, opts, deadline, &mut on_event);
    reports.extend(pool(&others, iso, opts, deadline, &mut on_event));
    // Report in inventory order, whatever order they finished in.
    reports.sort_by_key(|r| targets.iter().position(|t| t.name == r.host));
    reports
}

/// Work on `targets`, `opts.jobs` at a time, until all are done.
fn pool(
    targets: &[Target],
    iso: &IsoInfo,
    opts: &Options,
    deadline: Option<Instant>,
    on_event: &mut impl FnMut(Event),
) -> Vec<Report> {
    let mut reports = Vec::with_capacity(targets.len());
    crate::pool::run(
        targets,
        opts.jobs,
        |target, tx| {
            let report = run_target(target, iso, opts, deadline, tx);
            let _ = tx.send(Event::Done(report));
        },
        |event| {
            if let Event::Done(report) = &event {
                reports.push(report.clone());
            }
            on_event(event);
        },
    );
    reports
}

/// Less time than this before the deadline counts as none: a timeout cut to the time left
/// may fire a few milliseconds early, and a target started now could not finish anyway.
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// The time left before `deadline`, `None` when there is no deadline.
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether the deadline has (as good as) passed.
fn past(deadline: Option<Instant>) -> bool {
    time_left(deadline).is_some_and(|l| l <= DEADLINE_SLACK)
}

fn run_target(
    target: &Target,
    iso: &IsoInfo,
    opts: &Options,
    deadline: Option<Instant>,
    tx: &mpsc::Sender<Event>,
) -> Report {
    let started = Instant::now();
    let mut attempt = 0;
    let end = |attempt: u32, plan: Option<Plan>, end: End| Report {
        host: target.name.clone(),
        hypervisor: target.hypervisor,
        outcome: end.0,
        action: plan.as_ref().map(|p| p.action),
        reason: plan
            .as_ref()
            .map(|p| p.reason.to_string())
            .unwrap_or_default(),
        steps: plan
            .map(|p| p.steps.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        error: end.1,
        cause: end.2,
        attempts: attempt,
        seconds: started.elapsed().as_secs_f64(),
    };
    loop {
        if past(deadline) {
            let reached = (
                Outcome::Failed,
                Some(DEADLINE_REACHED.into()),
                Some(Cause::Deadline),
            );
            return end(attempt, None, reached);
        }
        attempt += 1;
        let mut plan_seen = None;
        let bounded = bounded_by(opts, deadline);
        let result = attempt_once(target, iso, &bounded, deadline, tx, &mut plan_seen);
        match result {
            Ok(outcome) => return end(attempt, plan_seen, (outcome, None, None)),
            Err(err) if past(deadline) => {
                let error = format!("{DEADLINE_REACHED}: {}", one_line(&err));
                let reached = (Outcome::Failed, Some(error), Some(Cause::Deadline));
                return end(attempt, plan_seen, reached);
            }
            Err(err) => {
                let transport = err.chain().find_map(|e| e.downcast_ref::<TransportError>());
                let cause = transport.map_or(Cause::Other, TransportError::cause);
                if let Some(delay) = retry_delay(opts, attempt, transport, deadline) {
                    let _ = tx.send(Event::Retry {
                        host: target.name.clone(),
                        kind: target.hypervisor,
                        attempt,
                        error: one_line(&err),
                        cause,
                        delay,
                    });
                    std::thread::sleep(delay);
                    continue;
                }
                let failed = (Outcome::Failed, Some(one_line(&err)), Some(cause));
                return end(attempt, plan_seen, failed);
            }
        }
    }
}

/// How an attempt ended: the outcome, the error and its cause.
type End = (Outcome, Option<String>, Option<Cause>);

/// In flight, a target gets at most the time left as its timeouts.
fn bounded_by(opts: &Options, deadline: Option<Instant>) -> Options {
    let mut bounded = opts.clone();
    if let Some(left) = time_left(deadline) {
        bounded.connect_timeout = opts.connect_timeout.min(left);
        bounded.transfer_timeout = opts.transfer_timeout.min(left);
    }
    bounded
}

/// The wait before the next attempt, or `None` when there is none: the failure is not
/// transient, the retries are used up, or the retry could not start before the deadline.
fn retry_delay(
    opts: &Options,
    attempt: u32,
    transport: Option<&TransportError>,
    deadline: Option<Instant>,
) -> Option<Duration> {
    let transient = transport.is_some_and(TransportError::is_transient);
    let delay = opts
        .backoff
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF);
    let in_time = time_left(deadline).is_none_or(|l| l > delay);
    (transient && attempt <= opts.retries && in_time).then_some(delay)
}

fn attempt_once(
    target: &Target,
    iso: &IsoInfo,
    opts: &Options,
    deadline: Option<Instant>,
    tx: &mpsc::Sender<Event>,
    plan_seen: &mut Option<Plan>,
) -> anyhow::Result<Outcome> {
    let mut transport = connect(target, opts)?;
    if let Some(at) = deadline {
        transport.set_deadline(at);
    }
    let strategy = match &opts.patch {
        Some(set) => patch_strategy(target, set)?,
        None => hypervisors::strategy_for(target, &opts.extras),
    };
    let _cloudstack_lock = match (&opts.db, opts.mode) {
        (Some(db), Mode::Apply) if cloudstack_writes_too(target) => {
            Some(DbLock::acquire(db, time_left(deadline))?)
        }
        _ => None,
    };
    let _guard = match opts.mode {
        Mode::Apply => strategy.lock(transport.as_mut())?,
        Mode::Status | Mode::DryRun => None,
    };
    let look = Look {
        force: opts.force,
        verify: opts.verify,
        cloudstack: opts.cloudstack.clone(),
    };
    let plan = strategy.plan(transport.as_mut(), iso, &look)?;
    *plan_seen = Some(plan.clone());
    let _ = tx.send(Event::Planned {
        host: target.name.clone(),
        kind: target.hypervisor,
        plan: plan.clone(),
    });
    if plan.action == Action::UpToDate {
        if opts.mode == Mode::Apply {
            for step in &plan.housekeeping {
                // Bookkeeping only: a failure here leaves the host as current as it was.
                if let Err(e) = hypervisors::execute(transport.as_mut(), step, &|_| {}) {
                    tracing::warn!("{}: {step}: {e}", target.name);
                }
            }
        }
        return Ok(Outcome::Current);
    }
    if opts.mode != Mode::Apply {
        return Ok(Outcome::Stale);
    }
    for step in &plan.steps {
        let _ = tx.send(Event::Step {
            host: target.name.clone(),
            kind: target.hypervisor,
            step: step.to_string(),
        });
        let progress = |sent: u64| {
            let _ = tx.send(Event::Bytes {
                host: target.name.clone(),
                kind: target.hypervisor,
                sent,
                total: iso.size,
            });
        };
        hypervisors::execute(transport.as_mut(), step, &progress)?;
    }
    Ok(Outcome::Updated)
}

/// Patch files go to the profile's folder on a host, or into a directory target's path.
fn patch_strategy(target: &Target, set: &PatchSet) -> anyhow::Result<Box<dyn Strategy>> {
    let Some(folder) = hypervisors::patch::folder(target) else {
        anyhow::bail!(
            "{}: {} targets take no patch files",
            target.name,
            target.hypervisor
        );
    };
    Ok(Box::new(PatchFiles {
        folder,
        set: set.clone(),
        divert: target.hypervisor == Hypervisor::Management,
    }))
}

/// VMware and Hyper-V secondary storage, which CloudStack copies its own ISO to under its
/// `prepare.systemvm` lock.
fn cloudstack_writes_too(target: &Target) -> bool {
    target.place == Place::Secondary
        && matches!(target.hypervisor, Hypervisor::Vmware | Hypervisor::Hyperv)
}

/// An error and its causes on one line.
pub fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
