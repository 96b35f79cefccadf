//! The `AIRLOCK_EVENTS` named pipe: creating it, and turning the lines the program writes
//! into events.
//!
//! The worker holds the fifo open for reading *and* writing, so the program's opens never
//! block and the reader never sees end-of-file when a writer closes.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use airlock_core::event::{EventBody, ProgramEvent};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::lines::{Line, LineSplitter};
use crate::pump::{CHUNK_BYTES, Sink, Stop};

/// Most bytes read after the program ended, so a writer that never stops cannot hold the
/// worker.
const FINAL_DRAIN_BYTES: usize = 1024 * 1024;

/// The fifo and, when the worker chose its place, the private directory holding it.
#[derive(Debug)]
pub struct EventsPipe {
    pub path: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl EventsPipe {
    /// Makes sure a fifo exists at `configured` (or in a fresh private temp dir) and opens
    /// it for reading.
    pub fn open(configured: Option<&Path>) -> (Self, io::Result<pipe::Receiver>) {
        let pipe = match configured {
            Some(path) => Self {
                path: path.to_owned(),
                temp_dir: None,
            },
            None => match make_temp_dir() {
                Ok(dir) => Self {
                    path: dir.join("events"),
                    temp_dir: Some(dir),
                },
                Err(e) => {
                    return (
                        Self {
                            path: PathBuf::new(),
                            temp_dir: None,
                        },
                        Err(e),
                    );
                }
            },
        };
        let receiver = pipe.create_and_open();
        (pipe, receiver)
    }

    /// Whether the worker chose the path (and must tell the program through the env).
    pub fn is_private(&self) -> bool {
        self.temp_dir.is_some()
    }

    fn create_and_open(&self) -> io::Result<pipe::Receiver> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let c_path = CString::new(self.path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err);
            }
        }
        // Fails with a clear error when something other than a fifo is there.
        pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&self.path)
    }

    /// Removes the private temp dir, if the worker made one.
    pub fn cleanup(&self) {
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn make_temp_dir() -> io::Result<PathBuf> {
    let template = std::env::temp_dir().join("airlock-worker-XXXXXX");
    let mut bytes = template.into_os_string().into_vec();
    bytes.push(0);
    // SAFETY: `bytes` is a writable NUL-terminated template ending in XXXXXX; mkdtemp
    // only rewrites those characters in place.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// The event for one line of the events file; blank lines are ignored.
pub fn event_body(line: Line) -> Option<EventBody> {
    let text = line.text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match ProgramEvent::parse(text) {
        Ok(event) => event.into_body(),
        Err(e) => EventBody::Warning {
            message: format!("malformed line in AIRLOCK_EVENTS: {e}"),
            count: Some(1),
        },
    })
}

/// Reads event lines until `stop`, then whatever is already in the pipe.
pub async fn read_events(
    mut receiver: pipe::Receiver,
    max_line_bytes: usize,
    sink: Sink,
    mut stop: Stop,
) {
    let mut splitter = LineSplitter::new(max_line_bytes);
    let mut buf = vec![0u8; CHUNK_BYTES];
    let offer = |line: Line| {
        if let Some(body) = event_body(line) {
            sink.offer(body);
        }
    };
    loop {
        tokio::select! {
            () = sink.wait_for_room() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let read = tokio::select! {
            read = receiver.read(&mut buf) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], offer),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("airlock-worker: reading AIRLOCK_EVENTS: {e}");
                break;
            }
        }
    }
    let mut left = FINAL_DRAIN_BYTES;
    while left > 0 {
        match receiver.try_read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                splitter.push(&buf[..n], offer);
                left = left.saturating_sub(n);
            }
        }
    }
    if let Some(line) = splitter.finish() {
        offer(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::event::LogStream;

    fn body(text: &str) -> Option<EventBody> {
        event_body(Line {
            text: text.to_owned(),
            truncated: false,
        })
    }

    #[test]
    fn lines_become_events_or_warnings() {
        assert_eq!(
            body(r#"{"type":"score","name":"acc","value":0.5}"#),
            Some(EventBody::Score {
                name: "acc".into(),
                value: 0.5
            })
        );
        assert_eq!(
            body(r#"  {"type":"log","message":"hi"}  "#),
            Some(EventBody::Log {
                stream: LogStream::Events,
                message: "hi".into(),
                truncated: false
            })
        );
        assert_eq!(body("   "), None);
        match body("{nope") {
            Some(EventBody::Warning {
                message,
                count: Some(1),
            }) => {
                assert!(
                    message.starts_with("malformed line in AIRLOCK_EVENTS: "),
                    "{message}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
