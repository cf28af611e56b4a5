//! Driving the `huddle` client binary: one-shot runs ([`Cli::run`]), interactive sessions
//! on a pseudo-terminal ([`Pty`]), and a TCP [`Proxy`] that can cut every connection to
//! the server and refuse new ones for a while (to test reconnect-and-resume).

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A one-shot command on a busy 2-core machine (debug build, cold caches).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a session may take to show an expected line.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `huddle` binary as one user: a server URL and a config dir of its own.
pub struct Cli {
    pub url: String,
    config: tempfile::TempDir,
}

impl Cli {
    pub fn new(url: &str) -> Cli {
        Cli {
            url: url.to_string(),
            config: tempfile::tempdir().expect("config tempdir"),
        }
    }

    /// The config dir the binary gets as `HUDDLE_CONFIG_DIR`.
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    pub fn tokens_file(&self) -> PathBuf {
        self.config_dir().join("tokens.json")
    }

    /// The stored tokens (`agents` of tokens.json), or none.
    pub fn stored(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.tokens_file()) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).expect("tokens.json is JSON");
                v["agents"].as_array().cloned().unwrap_or_default()
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read tokens.json: {e}"),
        }
    }

    /// The stored token of `agent` (the only entry of that agent).
    pub fn stored_token(&self, agent: &str) -> Option<String> {
        let all: Vec<Value> = self
            .stored()
            .into_iter()
            .filter(|e| e["agent"] == agent)
            .collect();
        assert!(all.len() <= 1, "several stored tokens of {agent}: {all:?}");
        all.first()
            .map(|e| e["token"].as_str().unwrap().to_string())
    }

    /// `huddle ARGS` with `--url` given through `HUDDLE_URL`, nothing else from the
    /// caller's environment that the binary reads.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = huddle_testkit::huddle_command(args);
        cmd.env("HUDDLE_URL", &self.url)
            .env("HUDDLE_CONFIG_DIR", self.config_dir())
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `huddle ARGS` to completion (stdin empty).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args)).await
    }

    pub async fn run_with(&self, mut cmd: Command) -> Run {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let output = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("huddle {args:?} did not finish within {RUN_TIMEOUT:?}"))
            .expect("run huddle");
        Run {
            args,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `huddle ARGS` as an interactive session on a pseudo-terminal.
    pub fn pty(&self, args: &[&str]) -> Pty {
        Pty::spawn(self.command(args))
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit status 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "huddle {:?} failed: {self:#?}",
            self.args
        );
        &self.stdout
    }

    /// Asserts success and parses stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| {
            panic!(
                "stdout of huddle {:?} is not JSON ({e}): {self:#?}",
                self.args
            )
        })
    }

    /// Asserts a failure: exit status 1, a message on stderr, nothing on stdout.
    /// Returns stderr.
    pub fn fails(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "huddle {:?} should fail with status 1: {self:#?}",
            self.args
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "a failure says why on stderr: {self:#?}"
        );
        assert!(
            self.stdout.is_empty(),
            "a failure prints no data on stdout: {self:#?}"
        );
        &self.stderr
    }

    /// stdout's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A process whose stdin, stdout and stderr are a pseudo-terminal; everything it prints
/// (and the terminal's echo of what is typed) is collected by a reader thread.
pub struct Pty {
    child: Child,
    writer: File,
    output: Arc<Mutex<String>>,
    /// Where the next [`Pty::expect`] starts looking.
    cursor: usize,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Pty {
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(name.to_str().expect("pts path"))
            .expect("open the pty's terminal side");
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup pts")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pts")))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().expect("spawn huddle on a pty");
        // `cmd` holds the parent's copies of the terminal side: without them, reading the
        // master ends (EIO) once the child is gone.
        drop(cmd);

        let master = File::from(master);
        let writer = master.try_clone().expect("dup master");
        let output = Arc::new(Mutex::new(String::new()));
        {
            let output = output.clone();
            let mut master = master;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match master.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                            output.lock().unwrap().push_str(&text);
                        }
                    }
                }
            });
        }
        Pty {
            child,
            writer,
            output,
            cursor: 0,
        }
    }

    /// Everything the session printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Types `text` and Enter.
    pub fn type_line(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\n").as_bytes())
            .expect("write to the pty");
        self.writer.flush().expect("flush the pty");
    }

    /// Waits until `needle` shows up after the previous match; panics with the whole
    /// output after [`WAIT`].
    pub async fn expect(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(at) = out[self.cursor.min(out.len())..].find(needle) {
                    self.cursor += at + needle.len();
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "the session did not print {needle:?} within {WAIT:?}; its output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many times `needle` appears in the whole output.
    pub fn count(&self, needle: &str) -> usize {
        self.output().matches(needle).count()
    }

    /// Waits for the process to exit; its status code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "the session did not exit within {WAIT:?}; its output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- huddle session output ----\n{}\n---- end of session output ----",
                self.output()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of a server. [`Proxy::cut`] drops every open connection and
/// refuses new ones until [`Proxy::restore`]: to the client, the server is gone.
pub struct Proxy {
    pub url: String,
    down: Arc<AtomicBool>,
    /// Connections still to lose their answer ([`Proxy::lose_next_answer`]), and lost.
    lose: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Proxy {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let (lose, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (down, conns) = (down.clone(), conns.clone());
            let (lose, lost) = (lose.clone(), lost.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        drop(inbound); // refused, as far as HTTP is concerned
                        continue;
                    }
                    let target = target.clone();
                    let losing = lose
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let lost = lost.clone();
                    let task = tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        if losing {
                            lose_answer(inbound, outbound).await;
                            lost.fetch_add(1, Ordering::SeqCst);
                        } else {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut conns = conns.lock().unwrap();
                    conns.retain(|t| !t.is_finished());
                    conns.push(task);
                }
            })
        };
        Proxy {
            url,
            down,
            lose,
            lost,
            conns,
            accept,
        }
    }

    /// The next connection carries its requests to the server, but the server's answer
    /// never reaches the client: the connection closes as soon as the answer starts.
    pub fn lose_next_answer(&self) {
        self.lose.fetch_add(1, Ordering::SeqCst);
    }

    /// How many answers were lost so far.
    pub fn answers_lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Forwards what the client sends until the server starts answering, then drops both
/// connections: the request was served, its answer is lost.
async fn lose_answer(mut inbound: TcpStream, mut outbound: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, _to_client) = inbound.split();
    let (mut from_server, mut to_server) = outbound.split();
    let forward = async {
        let mut buf = [0u8; 8192];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => std::future::pending::<()>().await,
                Ok(n) => {
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    };
    let mut first = [0u8; 1];
    tokio::select! {
        _ = forward => {}
        _ = from_server.read(&mut first) => {}
    }
}
