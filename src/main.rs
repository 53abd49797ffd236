//! Parse, set up output, dispatch, map errors to exit codes; nothing else.

use clap::Parser;
use std::process::ExitCode;
use systemvm::cli::{Cli, Command};
use systemvm::events::{ErrorCause, Record, Summary};
use systemvm::exit::USAGE;
use systemvm::printer::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let printer = Printer::new(cli.quiet);
    // Before any thread: Ctrl-C and SIGTERM remove our temps and exit 130.
    if let Err(e) = systemvm::interrupt::install() {
        tracing::debug!("cannot handle SIGINT and SIGTERM: {e}");
    }
    // Many hosts at once need many sockets; a failure leaves the old limit.
    if let Err(e) = systemvm::rlimit::raise_open_files() {
        tracing::debug!("cannot raise the open-file limit: {e}");
    }
    let json = cli.command.json_command();
    let result = match cli.command {
        Command::Build(args) => args.run(&printer),
        Command::Inspect(args) => args.run(&printer),
        Command::Keys(args) => args.run(&printer),
        Command::Inject(args) => args.run(&printer),
        Command::Status(args) => args.run(&printer),
        Command::Propagate(args) => args.run(&printer),
        Command::Package(args) => args.run(&printer),
        Command::Inventory(args) => args.run(&printer),
        Command::RestartSystemvms(args) => args.run(&printer),
        Command::PatchSystemvms(args) => args.run(&printer),
        Command::Version(args) => args.run(&printer),
        Command::Startup(args) => args.run(&printer),
        Command::Doctor(args) => args.run(&printer),
        Command::Appliance(args) => args.run(&printer),
    };
    // Interrupted: the signal's own line and exit 130 follow; nothing of ours may add to them.
    systemvm::interrupt::quiet_if_stopping();
    match result {
        Ok(status) => {
            if let Some(message) = status.message() {
                eprintln!("error: {}", systemvm::printer::printable(message));
            }
            status.into()
        }
        Err(err) => {
            // One line: the outermost context first, then its causes.
            let line = systemvm::propagate::one_line(&err);
            eprintln!("error: {}", systemvm::printer::printable(&line));
            if let Some(command) = json {
                let (error, cause) = (line.as_str(), ErrorCause::Usage);
                printer.record(&Record::Error { error, cause });
                printer.record(&Record::Summary(Summary::new(command, 0, &[], USAGE)));
            }
            ExitCode::from(USAGE)
        }
    }
}

fn init_logging(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Third-party HTTP/TLS crates log full request lines (API key, replayable signature) at
    // debug and trace: cap them at info whatever RUST_LOG asks for.
    for target in QUIET_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(systemvm::printer::stderr_color())
        .with_target(false)
        .without_time()
        .init();
}

/// Log targets of dependencies that may print secrets below info.
const QUIET_TARGETS: &[&str] = &[
    "ureq",
    "ureq_proto",
    "rustls",
    "native_tls",
    "hyper",
    "h2",
    "reqwest",
];
