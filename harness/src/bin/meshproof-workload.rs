//! `meshproof-workload`: the program inside every lab pod.
//!
//! `serve ROLE.json` plays a workload's role until stopped; `probe REQUEST.json` (or `-`
//! for standard input) runs one probe and prints its outcome as JSON on standard output;
//! `capture --interface IF [--filter BPF]` streams pcap on standard output until SIGTERM
//! (the capture helper container).
//! All logic lives in `meshproof::workload`; this file only parses arguments and prints.

use std::process::ExitCode;
use std::sync::Arc;

use meshproof::reporter::{Event, Level, Reporter};
use meshproof::workload::{self, ProbeRequest, Role};

const USAGE: &str = "usage: meshproof-workload serve ROLE.json [--verbose] | probe REQUEST.json|- | \
probe-json JSON | ready TIMEOUT_MS HOST:PORT... [--envoy=HOST:PORT] | \
capture --interface IF [--filter BPF]";

/// Prints the workload's events to standard error, where `docker logs` finds them.
struct StderrReporter {
    verbose: bool,
}

impl Reporter for StderrReporter {
    #[allow(clippy::print_stderr)] // This binary's log is its standard error.
    fn report(&self, event: Event) {
        match event {
            Event::Note {
                level: Level::Debug,
                message,
            } if self.verbose => eprintln!("debug: {message}"),
            Event::Note {
                level: Level::Debug,
                ..
            } => {}
            Event::Note { message, .. } => eprintln!("{message}"),
            Event::Started { label, .. } => eprintln!("{label}"),
            Event::Finished { id, summary, .. } => eprintln!("{id}: {summary}"),
        }
    }
}

fn read_arg(path: &str) -> Result<String, String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // The command line's own output.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshproof-workload: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", path] | ["serve", path, "--verbose"] => read_arg(path).and_then(|text| {
            let role = Role::from_json(path, &text).map_err(|e| e.to_string())?;
            let reporter = Arc::new(StderrReporter {
                verbose: args.len() == 3,
            });
            runtime
                .block_on(workload::serve(role, reporter))
                .map_err(|e| e.to_string())
        }),
        ["probe", path] => read_arg(path).and_then(|text| {
            let req: ProbeRequest =
                serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            let outcome = runtime.block_on(workload::probe::run(&req));
            let json = serde_json::to_string(&outcome).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }),
        ["probe-json", json] => {
            let req: Result<ProbeRequest, String> =
                serde_json::from_str(json).map_err(|e| format!("probe-json: {e}"));
            req.and_then(|req| {
                let outcome = runtime.block_on(workload::probe::run(&req));
                let json = serde_json::to_string(&outcome).map_err(|e| e.to_string())?;
                println!("{json}");
                Ok(())
            })
        }
        ["capture", rest @ ..] => workload::capture::parse_args(rest).and_then(|capture| {
            let reporter = StderrReporter { verbose: false };
            runtime.block_on(async {
                let stop = workload::capture::termination()
                    .map_err(|e| format!("capture: cannot handle signals: {e}"))?;
                let report = workload::capture::run(capture, stop, &reporter).await?;
                eprintln!("{}", report.line());
                Ok(())
            })
        }),
        ["ready", limit_ms, rest @ ..] => {
            let limit = std::time::Duration::from_millis(limit_ms.parse().unwrap_or(30_000));
            let envoy = rest.iter().find_map(|a| a.strip_prefix("--envoy="));
            let addrs: Vec<String> = rest
                .iter()
                .filter(|a| !a.starts_with("--"))
                .map(|a| a.to_string())
                .collect();
            runtime.block_on(workload::probe::wait_ready(&addrs, envoy, limit))
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meshproof-workload: {message}");
            ExitCode::from(2)
        }
    }
}
