//! One run of the program: start it, read its outputs, enforce the time limit, forward
//! SIGTERM/SIGINT, and end the event stream with `Exit` or `TimedOut`.

use std::ffi::OsString;
use std::future::pending;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_core::event::{EventBody, LogStream};
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::emitter::Emitter;
use crate::events_pipe::{EventsPipe, read_events};
use crate::limits::{OutputBudget, RateLimiter};
use crate::process::{self, Ending};
use crate::pump::{self, Sink, pump_output};

/// How long to keep reading the program's outputs after it exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// Exit code of the worker when the program ran out of time (as timeout(1)).
pub const TIMED_OUT_CODE: i32 = 124;
/// Exit code when the program cannot be started (as a shell).
pub const CANNOT_START_CODE: i32 = 127;

/// Why waiting for the program stopped.
enum Outcome {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut(u64),
    Signalled,
}

/// How the run ended.
enum End {
    Program(std::io::Result<std::process::ExitStatus>),
    TimedOut(u64),
}

impl End {
    /// The last event and the worker's exit code.
    fn last_event(&self) -> (EventBody, i32) {
        match self {
            Self::TimedOut(limit_secs) => (
                EventBody::TimedOut {
                    limit_secs: *limit_secs,
                },
                TIMED_OUT_CODE,
            ),
            Self::Program(status) => {
                let ending = Ending::of(status);
                (
                    EventBody::Exit {
                        code: ending.code,
                        signal: ending.signal,
                    },
                    ending.worker_code,
                )
            }
        }
    }
}

/// Runs `program` with `args` and returns the worker's exit code.
pub async fn run(config: Config, program: OsString, args: Vec<OsString>) -> i32 {
    let rate = Arc::new(Mutex::new(RateLimiter::new(
        config.max_lines_per_sec,
        Instant::now(),
    )));
    let stdout = match stdout() {
        Ok(stdout) => stdout,
        Err(e) => {
            eprintln!("airlock-worker: cannot use stdout: {e}");
            return 1;
        }
    };
    let mut emitter = Emitter::new(stdout, OutputBudget::new(config.max_output_bytes));
    let mut sigterm = listen(SignalKind::terminate());
    let mut sigint = listen(SignalKind::interrupt());

    let (events, receiver) = EventsPipe::open(config.events_path.as_deref());
    let receiver = match receiver {
        Ok(receiver) => Some(receiver),
        Err(e) => {
            let message = format!(
                "cannot open AIRLOCK_EVENTS `{}`: {e}; events from the program are not read",
                events.path.display()
            );
            emitter
                .emit(EventBody::Warning {
                    message,
                    count: None,
                })
                .await;
            None
        }
    };
    let events_env = (events.is_private() && receiver.is_some()).then_some(events.path.as_path());

    let started = process::command(&program, &args, events_env).spawn();
    let mut child = match started {
        Ok(child) => child,
        Err(e) => {
            let message = format!("cannot start `{}`: {e}", program.to_string_lossy());
            emitter
                .emit(EventBody::Warning {
                    message,
                    count: None,
                })
                .await;
            let exit = EventBody::Exit {
                code: Some(CANNOT_START_CODE),
                signal: None,
            };
            emitter.finish(&rate, exit).await;
            events.cleanup();
            return CANNOT_START_CODE;
        }
    };
    let pgid = child
        .id()
        .and_then(|id| libc::pid_t::try_from(id).ok())
        .unwrap_or(0);

    let reaper = crate::reaper::spawn_if_init(pgid);
    let (sink, source) = pump::queue(Arc::clone(&rate));
    let writer = tokio::spawn(emitter.run(source, Arc::clone(&rate)));
    let readers = Readers::spawn(&mut child, receiver, sink, config.max_line_bytes);

    let limit = async {
        match config.timeout_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => pending().await,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status),
        () = limit => Outcome::TimedOut(config.timeout_secs.unwrap_or(0)),
        () = next(&mut sigterm) => Outcome::Signalled,
        () = next(&mut sigint) => Outcome::Signalled,
    };
    let end = match outcome {
        Outcome::Exited(status) => End::Program(status),
        Outcome::TimedOut(secs) => {
            let _ = process::terminate(&mut child, pgid, config.kill_grace).await;
            End::TimedOut(secs)
        }
        Outcome::Signalled => {
            End::Program(process::terminate(&mut child, pgid, config.kill_grace).await)
        }
    };

    readers.drain().await;
    // Whatever is left of the program's own group does not outlive the run.
    process::signal_group(pgid, libc::SIGKILL);

    let code = match writer.await {
        Ok(mut emitter) => {
            let (last, code) = end.last_event();
            emitter.finish(&rate, last).await;
            code
        }
        Err(e) => {
            eprintln!("airlock-worker: the event writer failed: {e}");
            1
        }
    };
    if let Some(reaper) = reaper {
        reaper.abort();
    }
    events.cleanup();
    code
}

/// The tasks reading the program's stdout, stderr and events pipe.
struct Readers {
    outputs: Vec<JoinHandle<()>>,
    events: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Readers {
    fn spawn(
        child: &mut Child,
        events: Option<pipe::Receiver>,
        sink: Sink,
        max_line_bytes: usize,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let mut outputs = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let (sink, stop_rx) = (sink.clone(), stop_rx.clone());
            let pump = pump_output(stdout, LogStream::Stdout, max_line_bytes, sink, stop_rx);
            outputs.push(tokio::spawn(pump));
        }
        if let Some(stderr) = child.stderr.take() {
            let (sink, stop_rx) = (sink.clone(), stop_rx.clone());
            let pump = pump_output(stderr, LogStream::Stderr, max_line_bytes, sink, stop_rx);
            outputs.push(tokio::spawn(pump));
        }
        let events = events.map(|r| tokio::spawn(read_events(r, max_line_bytes, sink, stop_rx)));
        Self {
            outputs,
            events,
            stop,
        }
    }

    /// Waits for stdout and stderr to end, but at most [`DRAIN_AFTER_EXIT`]: a detached
    /// grandchild may hold them open forever. Then takes what is left in the events pipe.
    async fn drain(self) {
        let deadline = tokio::time::Instant::now() + DRAIN_AFTER_EXIT;
        let mut unfinished = Vec::new();
        for mut output in self.outputs {
            if tokio::time::timeout_at(deadline, &mut output)
                .await
                .is_err()
            {
                unfinished.push(output);
            }
        }
        self.stop.send_replace(true);
        for output in unfinished {
            let _ = output.await;
        }
        if let Some(events) = self.events {
            let _ = events.await;
        }
    }
}

/// The worker's stdout for async writes (done on a blocking thread, so a slow reader never
/// stalls the pipe readers).
fn stdout() -> std::io::Result<tokio::fs::File> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(tokio::fs::File::from_std(std::fs::File::from(fd)))
}

fn listen(kind: SignalKind) -> Option<Signal> {
    signal(kind)
        .map_err(|e| eprintln!("airlock-worker: cannot listen for signal {kind:?}: {e}"))
        .ok()
}

/// The next delivery of `signal`; never, when it could not be installed.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                pending::<()>().await;
            }
        }
        None => pending().await,
    }
}
