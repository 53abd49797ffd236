//! Restarting the system VMs so they boot the new ISO: the secondary storage VMs and
//! console proxies (`listSystemVms`; stop then start, or `rebootSystemVm`) and the virtual
//! routers (`listRouters listall=true`; `rebootRouter`). Or, from CloudStack 4.17, live
//! patching them with the management server's patch files: `patchSystemVm` for system VMs,
//! `restartNetwork`/`restartVPC` with `livepatch=true` once per network or VPC of routers.
//! The management server skips a VM whose scripts' signature equals its digest unless
//! `forced`; its answer is shown as it gives it.
//!
//! Like the propagation engine, plain worker threads take VMs from a shared index (at most
//! `jobs` at once) and send [`Event`]s to the caller's thread, which alone writes output.
//! Each action is a CloudStack async job polled with `queryAsyncJobResult`; one deadline
//! bounds the whole run, so a job that never finishes is reported as timed out rather than
//! waited on forever. A VM whose stop succeeded always gets its start issued, even past the
//! deadline, so no system VM is left stopped by us without a start job.

use super::client::{unexpected, ApiError, Client, JobOutcome};
use crate::transport::Cause;
use serde::Serialize;
use serde_json::Value;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    pub id: String,
    pub name: String,
    /// `secondarystoragevm`, `consoleproxy` or `router`.
    pub kind: String,
    pub zone: Option<String>,
    pub state: String,
    /// A router's guest network and VPC (`guestnetworkid`, `vpcid`).
    pub network: Option<String>,
    pub vpc: Option<String>,
}

impl Vm {
    fn is_router(&self) -> bool {
        self.kind == "router"
    }
}

/// How system VMs are restarted (routers are always rebooted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `stopSystemVm` then `startSystemVm`: the VM is rebuilt and attaches the new ISO.
    StopStart,
    /// `rebootSystemVm`.
    Reboot,
    /// 4.17+: `patchSystemVm`, and for routers `restartNetwork`/`restartVPC` with
    /// `livepatch=true`; `forced` patches even VMs whose scripts are current.
    LivePatch { forced: bool },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub deadline: Instant,
    pub poll_interval: Duration,
    pub method: Method,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Restarted,
    Failed,
    TimedOut,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Restarted => "restarted",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub vm: String,
    pub id: String,
    pub kind: String,
    pub zone: Option<String>,
    pub action: &'static str,
    pub outcome: Outcome,
    /// What was done, or for a failure what went wrong.
    pub detail: String,
    /// Why it failed: `connect` (no answer), `command` (an API error or a failed job),
    /// `deadline` (a job still pending at the deadline); `None` unless it failed.
    pub cause: Option<Cause>,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// An API command was issued for a VM.
    Step {
        vm: String,
        kind: String,
        step: String,
    },
    Done(Report),
}

/// The system VMs (and routers unless `routers` is false), optionally in one zone.
pub fn discover(
    client: &Client,
    zone: Option<&str>,
    routers: bool,
    page_size: usize,
) -> Result<Vec<Vm>, ApiError> {
    let params: Vec<(&str, String)> = Vec::from_iter(zone.map(|z| ("zoneid", z.to_string())));
    let mut vms = Vec::new();
    for v in client.list("listSystemVms", "systemvm", &params, page_size)? {
        vms.push(vm_of(&v, None, "listSystemVms")?);
    }
    if routers {
        let mut p = params.clone();
        p.push(("listall", "true".into()));
        for v in client.list("listRouters", "router", &p, page_size)? {
            vms.push(vm_of(&v, Some("router"), "listRouters")?);
        }
    }
    Ok(vms)
}

fn vm_of(v: &Value, kind: Option<&str>, command: &str) -> Result<Vm, ApiError> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let id = s("id").ok_or_else(|| unexpected(command, "an entry without id"))?;
    Ok(Vm {
        name: s("name").unwrap_or_else(|| id.clone()),
        kind: kind
            .map(str::to_string)
            .or_else(|| s("systemvmtype"))
            .unwrap_or_else(|| "systemvm".into()),
        zone: s("zonename").or_else(|| s("zoneid")),
        state: s("state").unwrap_or_default(),
        network: s("guestnetworkid"),
        vpc: s("vpcid"),
        id,
    })
}

/// For live patching: system VMs as they are, routers folded into one item per VPC or
/// guest network (named after its routers), since CloudStack patches a network's routers
/// together. A network is running when any of its routers is.
pub fn per_network(vms: Vec<Vm>) -> Vec<Vm> {
    let mut out: Vec<Vm> = Vec::new();
    for vm in vms {
        let key = match (&vm.vpc, &vm.network) {
            _ if !vm.is_router() => None,
            (Some(vpc), _) => Some(("vpc", vpc.clone())),
            (None, Some(net)) => Some(("network", net.clone())),
            (None, None) => None,
        };
        let Some((kind, id)) = key else {
            out.push(vm);
            continue;
        };
        match out.iter_mut().find(|v| v.kind == kind && v.id == id) {
            Some(group) => {
                group.name = format!("{}+{}", group.name, vm.name);
                if vm.state.eq_ignore_ascii_case("running") {
                    group.state = vm.state;
                }
            }
            None => out.push(Vm {
                id,
                kind: kind.into(),
                ..vm
            }),
        }
    }
    out
}

/// Restart every VM; events go to `on_event` on this thread. Reports come back in the
/// order the VMs finished.
pub fn run(
    client: &Client,
    vms: &[Vm],
    opts: &Options,
    mut on_event: impl FnMut(Event),
) -> Vec<Report> {
    let mut reports = Vec::new();
    crate::pool::run(
        vms,
        opts.jobs,
        |vm, tx| {
            let report = restart_one(client, vm, opts, tx);
            let _ = tx.send(Event::Done(report));
        },
        |event| {
            if let Event::Done(r) = &event {
                reports.push(r.clone());
            }
            on_event(event);
        },
    );
    reports
}

/// The action's name in reports, the API commands it is made of, and their parameters.
fn commands(
    vm: &Vm,
    method: Method,
) -> (
    &'static str,
    &'static [&'static str],
    Vec<(&'static str, String)>,
) {
    let id = ("id", vm.id.clone());
    match (method, vm.kind.as_str()) {
        (Method::LivePatch { .. }, "network") => (
            "live-patch",
            &["restartNetwork"],
            vec![id, ("livepatch", "true".into())],
        ),
        (Method::LivePatch { .. }, "vpc") => (
            "live-patch",
            &["restartVPC"],
            vec![id, ("livepatch", "true".into())],
        ),
        (Method::LivePatch { forced }, _) => (
            "live-patch",
            &["patchSystemVm"],
            vec![id, ("forced", forced.to_string())],
        ),
        _ if vm.is_router() => ("reboot", &["rebootRouter"], vec![id]),
        (Method::Reboot, _) => ("reboot", &["rebootSystemVm"], vec![id]),
        (Method::StopStart, _) => ("stop-start", &["stopSystemVm", "startSystemVm"], vec![id]),
    }
}

/// Why a VM is not worked on at all: not running, or the deadline has passed.
fn not_started(vm: &Vm, opts: &Options) -> Option<End> {
    if !vm.state.eq_ignore_ascii_case("running") {
        let state = if vm.state.is_empty() {
            "unknown"
        } else {
            &vm.state
        };
        let detail = format!("state {state}: not running, left to CloudStack");
        return Some((Outcome::Skipped, detail, None));
    }
    (Instant::now() >= opts.deadline).then(|| {
        let detail = "not started: the deadline had passed".to_string();
        (Outcome::TimedOut, detail, Some(Cause::Deadline))
    })
}

fn restart_one(client: &Client, vm: &Vm, opts: &Options, tx: &mpsc::Sender<Event>) -> Report {
    let started = Instant::now();
    let (action, commands, params) = commands(vm, opts.method);
    let report = |(outcome, detail, cause): End| Report {
        vm: vm.name.clone(),
        id: vm.id.clone(),
        kind: vm.kind.clone(),
        zone: vm.zone.clone(),
        action,
        outcome,
        detail,
        cause,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(end) = not_started(vm, opts) {
        return report(end);
    }
    for (n, command) in commands.iter().enumerate() {
        // A start after a successful stop is issued even past the deadline.
        let wait = n == 0 || Instant::now() < opts.deadline;
        let _ = tx.send(Event::Step {
            vm: vm.name.clone(),
            kind: vm.kind.clone(),
            step: command.to_string(),
        });
        let then_more = n + 1 < commands.len();
        if let Some(end) = run_job(client, command, &params, wait, then_more, opts) {
            return report(end);
        }
    }
    let detail = match action {
        "stop-start" => "stopped and started",
        "live-patch" => "live-patched",
        _ => "rebooted",
    };
    report((Outcome::Restarted, detail.into(), None))
}

/// How a VM's run ended: the outcome, its detail and, for a failure, the cause.
type End = (Outcome, String, Option<Cause>);

/// An API call's failure as a VM's end.
fn api_failed(e: &ApiError) -> End {
    let cause = match e {
        ApiError::Transport { .. } => Cause::Connect,
        _ => Cause::Command,
    };
    (Outcome::Failed, e.to_string(), Some(cause))
}

/// One async job; `None` when it succeeded, else how the VM's run ends.
fn run_job(
    client: &Client,
    command: &str,
    params: &[(&str, String)],
    wait: bool,
    then_more: bool,
    opts: &Options,
) -> Option<End> {
    let id = match client.start_job(command, params) {
        Ok(id) => id,
        Err(e) => return Some(api_failed(&e)),
    };
    let outcome = match wait {
        false => JobOutcome::Pending,
        true => match client.wait_job(&id, opts.poll_interval, opts.deadline) {
            Ok(outcome) => outcome,
            Err(e) => return Some(api_failed(&e)),
        },
    };
    match outcome {
        JobOutcome::Done(_) => None,
        JobOutcome::Failed(text) => Some((
            Outcome::Failed,
            format!("{command} job {id} failed: {text}"),
            Some(Cause::Command),
        )),
        JobOutcome::Pending => {
            let left = if then_more {
                " (not started again; check it in CloudStack)"
            } else {
                ""
            };
            Some((
                Outcome::TimedOut,
                format!("{command} job {id} still pending at the deadline{left}"),
                Some(Cause::Deadline),
            ))
        }
    }
}
