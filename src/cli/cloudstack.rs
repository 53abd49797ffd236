//! `systemvm inventory from-cloudstack` and `systemvm restart-systemvms`, and the API
//! options they share with `propagate --restart-systemvms`. The keys come from files or
//! environment variables, never from the command line.

use crate::cloudstack::{hosts, Client, ClientConfig};
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const API_KEY_ENV: &str = "CLOUDSTACK_API_KEY";
pub const SECRET_KEY_ENV: &str = "CLOUDSTACK_SECRET_KEY";

/// How to reach and sign for the CloudStack API
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// CloudStack API endpoint, e.g. https://HOST:8080/client/api
    #[arg(long, value_name = "URL", env = "CLOUDSTACK_API_URL")]
    pub api_url: Option<String>,

    /// File whose first line is the API key [else $CLOUDSTACK_API_KEY]
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// File whose first line is the secret key [else $CLOUDSTACK_SECRET_KEY]
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// PEM CA certificates to trust for https [default: the system's]
    #[arg(long, value_name = "FILE")]
    pub api_ca_file: Option<PathBuf>,

    /// Seconds one API call may take (connecting: at most 10)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub api_timeout: u64,

    /// Items asked for per page of a list call
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: usize,
}

impl ApiArgs {
    /// A client, once the URL and both keys are known.
    pub fn client(&self) -> Result<Client> {
        let Some(url) = self.api_url.clone() else {
            bail!("no CloudStack API: give --api-url URL or set CLOUDSTACK_API_URL");
        };
        if self.api_timeout == 0 {
            bail!("--api-timeout must be at least 1 second");
        }
        if self.page_size == 0 {
            bail!("--page-size must be at least 1");
        }
        let api_key = key("API key", self.api_key_file.as_deref(), API_KEY_ENV)?;
        let secret_key = key(
            "secret key",
            self.secret_key_file.as_deref(),
            SECRET_KEY_ENV,
        )?;
        let call = Duration::from_secs(self.api_timeout);
        let client = Client::new(ClientConfig {
            url: url.clone(),
            api_key,
            secret_key,
            connect_timeout: call.min(Duration::from_secs(10)),
            call_timeout: call,
            ca_file: self.api_ca_file.clone(),
        })?;
        // Without TLS the API key and every signed request (the signature replayable until
        // it expires) cross the network in the clear.
        if url.to_ascii_lowercase().starts_with("http://") {
            tracing::warn!(
                "--api-url {url} is plain http: the API key and signed requests are sent \
                 unencrypted (use https://)"
            );
        }
        Ok(client)
    }
}

fn key(what: &str, file: Option<&Path>, env: &str) -> Result<Secret> {
    match file {
        // The API key names the account; the secret key is the one to keep private.
        Some(path) if env == API_KEY_ENV => Secret::identifier_from_file(path),
        Some(path) => Secret::from_file(path),
        None => match std::env::var_os(env) {
            Some(_) => Secret::from_env(env),
            None => bail!(
                "no CloudStack {what}: give --{}-file FILE or set {env}",
                what.replace(' ', "-").to_ascii_lowercase()
            ),
        },
    }
}

/// Inventories of hosts
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    #[command(after_help = crate::cli::examples::INVENTORY)]
    FromCloudstack(FromCloudstackArgs),
    #[command(after_help = crate::cli::examples::INVENTORY_CHECK)]
    Check(CheckArgs),
}

impl InventoryCommand {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        match self {
            InventoryCommand::FromCloudstack(args) => args.run(printer),
            InventoryCommand::Check(args) => args.run(printer),
        }
    }
}

/// Parse an inventory and list its targets; contacts no host and reads no key
///
/// The checks status and propagate make before they connect: every key known, every
/// value valid, names unique. Errors name the file and line. `systemvm doctor` goes on to
/// check the key files and log in to each host.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory
    #[arg(value_name = "FILE", default_value = crate::inventory::DEFAULT_PATH)]
    pub inventory: PathBuf,
}

impl CheckArgs {
    fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let inv = crate::inventory::Inventory::load(&self.inventory)?;
        for t in &inv.targets {
            printer.out(format!("{}\t{}", t.name, t.hypervisor));
        }
        printer.info(format!(
            "{}: parses, {} targets",
            self.inventory.display(),
            inv.targets.len()
        ));
        Ok(ExitStatus::Success)
    }
}

/// Write an inventory from CloudStack's hosts (listHosts type=Routing)
///
/// XenServer and KVM hosts become [[host]] entries with their address, zone and cluster;
/// VMware and Hyper-V zones get commented [[secondary]] hints. CloudStack does not know the
/// SSH credentials: fill them in, then check with `systemvm status --inventory FILE`.
#[derive(Debug, Args)]
pub struct FromCloudstackArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    /// Where to write the inventory: a file, a directory (for hosts.toml), "-" for stdout
    #[arg(short, long, value_name = "FILE", default_value = "hosts.toml")]
    pub output: PathBuf,

    /// Only the hosts of this zone (its id)
    #[arg(long, value_name = "ID")]
    pub zone: Option<String>,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,
}

impl FromCloudstackArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        // None: stdout.
        let output = if self.output.as_os_str() == "-" {
            None
        } else {
            let file = crate::output::file(Some(&self.output), "hosts.toml")?;
            crate::output::refuse_existing(&file, self.force, "an inventory you may have edited")?;
            Some(file)
        };
        let client = self.api.client()?;
        let mut params = vec![("type", "Routing".to_string())];
        let mut source = self.api.api_url.clone().unwrap_or_default();
        if let Some(z) = &self.zone {
            params.push(("zoneid", z.clone()));
            source.push_str(&format!(" (zone {z})"));
        }
        let found = client
            .list("listHosts", "host", &params, self.api.page_size)
            .context("CloudStack API")?;
        let rendered = hosts::render(&found, &source);
        for why in &rendered.skipped {
            printer.warn(format!("skipped {why}"));
        }
        let (dest, file) = match &output {
            Some(file) => {
                if !self.force && file.exists() {
                    bail!("{} appeared meanwhile; not replacing it", file.display());
                }
                crate::atomic::write(file, rendered.text.as_bytes(), 0o644)?;
                (file.display().to_string(), file.display().to_string())
            }
            None => {
                let _ = std::io::stdout().lock().write_all(rendered.text.as_bytes());
                ("stdout".to_string(), "FILE".to_string())
            }
        };
        printer.info(format!(
            "wrote {dest}: {} hosts from {} CloudStack hosts, {} secondary storage hints; \
             fill in the credentials in [defaults], then run systemvm status --inventory {file}",
            rendered.hosts,
            found.len(),
            rendered.secondary_hints
        ));
        Ok(ExitStatus::Success)
    }
}
