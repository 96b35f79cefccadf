//! `airlock-worker`: runs one program inside the sandbox and reports everything it does.
//!
//! Usage: `airlock-worker [--] <program> [args...]`, configured through `AIRLOCK_WORKER_*`
//! environment variables (removed from the program's environment). The program's stdout,
//! stderr and the lines it appends to `$AIRLOCK_EVENTS` become one stream of
//! seq-numbered [`airlock_core::event::WorkerEvent`] JSON lines on the worker's stdout,
//! rate- and size-limited, ending with `Exit` (or `TimedOut` when the time limit passed).
//!
//! Exit code: the program's (128 + signal when killed by one), 124 on time-out, 127 when
//! the program cannot be started, 2 for a bad command line or configuration.
//!
//! `airlock-worker --install <dir>` copies the worker itself to `<dir>/airlock-worker`
//! and exits: the Kubernetes runtime's init container uses it to bring the worker into a
//! pod whose image knows nothing of Airlock.

mod config;
mod emitter;
mod events_pipe;
mod install;
mod limits;
mod lines;
mod process;
mod pump;
mod reaper;
mod supervise;

use std::ffi::OsString;
use std::time::Duration;

const USAGE: &str = "usage: airlock-worker [--] <program> [args...] | --install <dir>";

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--install") {
        return match args.get(1) {
            Some(dir) if args.len() == 2 => install::install(std::path::Path::new(dir)),
            _ => {
                eprintln!("usage: airlock-worker --install <dir>");
                2
            }
        };
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("{USAGE}");
        return 2;
    }
    let program = args.remove(0);
    let config = match config::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("airlock-worker: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("airlock-worker: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(supervise::run(config, program, args));
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}
