//! The one JSON schema of `--output-format json` (documented in `docs/events.md`): one object
//! per line, each with `event`. A record about one target names it `target`, with its `kind`;
//! a failure is `error` (the message) with `cause` (one word). Every command ends with a
//! `summary` carrying `schema`, `command`, `total`, `counts` and `exit_code`.
//!
//! The records are views over the engine's own types, so the engine can change its structs
//! without changing what scripts read.

use crate::cloudstack::restart;
use crate::generation::Generation;
use crate::hypervisors::{Action, Plan};
use crate::kind::Hypervisor;
use crate::propagate;
use crate::transport::Cause;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The schema's version, on every summary. Adding a field keeps it; renaming or removing
/// one, or changing a field's meaning, raises it.
pub const SCHEMA: u32 = 1;

/// The command a summary closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Build,
    Inspect,
    Inject,
    Status,
    Propagate,
    Startup,
    RestartSystemvms,
    PatchSystemvms,
    Doctor,
}

/// One line of JSON output.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record<'a> {
    /// The management server's release and what it decides.
    Cloudstack {
        version: &'a str,
        source: crate::generation::Source,
        takes: Takes,
        digest: &'static str,
    },
    /// What a target needs (`status`, `--dry-run`) or is about to get.
    Plan {
        target: &'a str,
        kind: &'a str,
        action: &'a str,
        reason: String,
        steps: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        zone: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'a str>,
    },
    /// A step being carried out on a target.
    Step {
        target: &'a str,
        kind: &'a str,
        step: &'a str,
    },
    /// Upload progress.
    Bytes {
        target: &'a str,
        kind: &'a str,
        sent: u64,
        total: u64,
    },
    /// An attempt failed and is retried after `delay_seconds`.
    Retry {
        target: &'a str,
        kind: &'a str,
        attempt: u32,
        error: &'a str,
        cause: Cause,
        delay_seconds: f64,
    },
    /// A target's end: propagation's hosts, restart's VMs.
    Done(Done<'a>),
    /// One `doctor` check.
    Check {
        target: &'a str,
        kind: &'a str,
        status: crate::doctor::Status,
        matters_for: &'a str,
        detail: &'a str,
        fix: Option<&'a str>,
    },
    /// An artifact written (`build`, `inject`) or read (`inspect`): its path is the target.
    Artifact {
        target: &'a Path,
        kind: ArtifactKind,
        #[serde(flatten)]
        details: serde_json::Value,
    },
    /// The command failed before or outside its targets (bad input, a missing tool).
    Error { error: &'a str, cause: ErrorCause },
    /// The last line of every command.
    Summary(Summary),
}

/// What the management server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Takes {
    Iso,
    PatchFiles,
}

/// What an artifact record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// `build` wrote an ISO or patch files; the details are the manifest.
    Built,
    /// `inject` put keys into an ISO.
    Injected,
    /// `inspect` read an ISO.
    Inspected,
}

impl ArtifactKind {
    /// The command that makes (or reads) this kind of artifact.
    pub fn command(self) -> Command {
        match self {
            ArtifactKind::Built => Command::Build,
            ArtifactKind::Injected => Command::Inject,
            ArtifactKind::Inspected => Command::Inspect,
        }
    }
}

/// Why a command failed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCause {
    /// Bad input or configuration: exit status 2.
    Usage,
}

/// The end of one target (a host) or VM.
#[derive(Debug, Default, Serialize)]
pub struct Done<'a> {
    target: &'a str,
    kind: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    error: Option<&'a str>,
    cause: Option<Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    seconds: f64,
}

/// The last line: how many targets, how each ended, and the exit status.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub command: Command,
    pub total: usize,
    pub counts: BTreeMap<&'static str, usize>,
    pub exit_code: u8,
}

impl Summary {
    /// `counts` as (outcome, number) pairs, every outcome listed even at zero.
    pub fn new(
        command: Command,
        total: usize,
        counts: &[(&'static str, usize)],
        exit_code: u8,
    ) -> Summary {
        Summary {
            schema: SCHEMA,
            command,
            total,
            counts: counts.iter().copied().collect(),
            exit_code,
        }
    }
}

impl<'a> Record<'a> {
    pub fn cloudstack(g: &'a Generation) -> Record<'a> {
        Record::Cloudstack {
            version: g.version.as_str(),
            source: g.source,
            takes: if g.takes_patch_files() {
                Takes::PatchFiles
            } else {
                Takes::Iso
            },
            digest: g.digest().name(),
        }
    }

    pub fn plan(target: &'a str, kind: Hypervisor, plan: &'a Plan) -> Record<'a> {
        Record::Plan {
            target,
            kind: kind.as_str(),
            action: action_name(plan.action),
            reason: plan.reason.to_string(),
            steps: plan.steps.iter().map(ToString::to_string).collect(),
            id: None,
            zone: None,
            state: None,
        }
    }

    /// What `restart-systemvms --dry-run` would do to a VM.
    pub fn vm_plan(vm: &'a restart::Vm, action: &'a str) -> Record<'a> {
        Record::Plan {
            target: &vm.name,
            kind: &vm.kind,
            action,
            reason: String::new(),
            steps: vec![],
            id: Some(&vm.id),
            zone: vm.zone.as_deref(),
            state: Some(&vm.state),
        }
    }

    pub fn target_done(r: &'a propagate::Report) -> Record<'a> {
        Record::Done(Done {
            target: &r.host,
            kind: r.hypervisor.as_str(),
            outcome: r.outcome.as_str(),
            action: r.action.map(action_name),
            reason: (!r.reason.is_empty()).then_some(r.reason.as_str()),
            steps: Some(r.steps.clone()),
            error: r.error.as_deref(),
            cause: r.cause,
            attempts: Some(r.attempts),
            seconds: r.seconds,
            ..Done::default()
        })
    }

    pub fn vm_done(r: &'a restart::Report) -> Record<'a> {
        let failed = r.cause.is_some();
        Record::Done(Done {
            target: &r.vm,
            kind: &r.kind,
            outcome: r.outcome.as_str(),
            action: Some(r.action),
            id: Some(&r.id),
            zone: r.zone.as_deref(),
            detail: (!failed).then_some(r.detail.as_str()),
            error: failed.then_some(r.detail.as_str()),
            cause: r.cause,
            seconds: r.seconds,
            ..Done::default()
        })
    }

    pub fn check(c: &'a crate::doctor::Check) -> Record<'a> {
        Record::Check {
            target: &c.name,
            kind: c.kind,
            status: c.status,
            matters_for: &c.matters_for,
            detail: &c.detail,
            fix: c.fix.as_deref(),
        }
    }

    /// An artifact with `details` (a struct that serializes as an object) merged in.
    pub fn artifact(target: &'a Path, kind: ArtifactKind, details: &impl Serialize) -> Record<'a> {
        let mut details = serde_json::to_value(details).unwrap_or_default();
        if let Some(object) = details.as_object_mut() {
            // The target is the path; a second copy of it would only disagree.
            object.remove("path");
        }
        Record::Artifact {
            target,
            kind,
            details,
        }
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::UpToDate => "up-to-date",
        Action::Push => "push",
        Action::Force => "force",
    }
}
