//! External programs a test drives (node, a browser script), each run to
//! completion or killed at a deadline, so a hang fails the test instead of
//! the whole run.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` until it exits or `deadline` passes (then kills it):
/// whether it succeeded, and what it printed.
pub fn run_until(command: &mut Command, deadline: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default() + &std::fs::read_to_string(&err).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("{text}\nkilled after {deadline:?}")),
    }
}

/// Runs `command` with `stdin` piped in (a password, as an operator pipes
/// it) and waits for its output. A command refused before it reads stdin
/// may have exited already: that broken pipe is not the test's failure.
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    child.wait_with_output().unwrap()
}
