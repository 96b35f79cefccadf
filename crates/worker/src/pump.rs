//! Moves lines from the program's stdout and stderr to the writer without ever waiting on
//! it: lines pass the rate limiter, then a bounded queue; when either is full the line is
//! dropped and counted, so the program's pipes are always drained.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use airlock_core::event::{EventBody, LogStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::limits::RateLimiter;
use crate::lines::{Line, LineSplitter};

/// Bytes read from a pipe at a time.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Most events waiting for the writer.
pub const QUEUE_EVENTS: usize = 16 * 1024;
/// Most bytes (as counted by [`queued_bytes`]) waiting for the writer.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// Tells readers to stop waiting for more input (set to `true` once).
pub type Stop = watch::Receiver<bool>;

pub fn lock(rate: &Mutex<RateLimiter>) -> MutexGuard<'_, RateLimiter> {
    rate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Roughly the memory an event takes while queued.
fn queued_bytes(body: &EventBody) -> usize {
    let text = match body {
        EventBody::Log { message, .. } | EventBody::Warning { message, .. } => message.len(),
        EventBody::Progress { message, .. } => message.as_ref().map_or(0, String::len),
        EventBody::Score { name, .. } => name.len(),
        _ => 0,
    };
    64 + text
}

/// The queue between the readers and the writer, bounded by events and by bytes.
pub fn queue(rate: Arc<Mutex<RateLimiter>>) -> (Sink, Source) {
    let (tx, rx) = mpsc::channel(QUEUE_EVENTS);
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        Sink {
            tx,
            rate,
            bytes: Arc::clone(&bytes),
        },
        Source { rx, bytes },
    )
}

/// The readers' end of the queue.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<EventBody>,
    rate: Arc<Mutex<RateLimiter>>,
    bytes: Arc<AtomicUsize>,
}

impl Sink {
    /// Passes one program line on, or drops and counts it. Never waits.
    pub fn offer(&self, body: EventBody) {
        if !lock(&self.rate).admit(Instant::now()) {
            return;
        }
        let cost = queued_bytes(&body);
        if self.bytes.fetch_add(cost, Ordering::Relaxed) + cost > QUEUE_BYTES {
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            lock(&self.rate).count_overflow(1);
            return;
        }
        if let Err(e) = self.tx.try_send(body) {
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            if let mpsc::error::TrySendError::Full(_) = e {
                lock(&self.rate).count_overflow(1);
            }
        }
    }
}

/// The writer's end of the queue.
pub struct Source {
    rx: mpsc::Receiver<EventBody>,
    bytes: Arc<AtomicUsize>,
}

impl Source {
    /// The next event; `None` once every [`Sink`] is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<EventBody> {
        let body = self.rx.recv().await?;
        self.bytes.fetch_sub(queued_bytes(&body), Ordering::Relaxed);
        Some(body)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

pub fn log_body(stream: LogStream, line: Line) -> EventBody {
    EventBody::Log {
        stream,
        message: line.text,
        truncated: line.truncated,
    }
}

/// Reads `reader` to its end (or until `stop`), offering each line as a log event of
/// `stream`.
pub async fn pump_output<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    max_line_bytes: usize,
    sink: Sink,
    mut stop: Stop,
) {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut buf = vec![0u8; CHUNK_BYTES];
    let offer = |line: Line| sink.offer(log_body(stream, line));
    loop {
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], offer),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("airlock-worker: reading the program's {stream:?}: {e}");
                break;
            }
        }
        // Let the writer take these lines before the next chunk can fill the queue.
        tokio::task::yield_now().await;
    }
    if let Some(line) = splitter.finish() {
        offer(line);
    }
}
