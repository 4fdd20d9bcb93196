//! Runs a function's real binary as Lambda does: a process that asks a Runtime API for events and
//! posts the answers. This fake Runtime API (the 2018-06-01 protocol) hands it the events a test
//! gives and keeps every line the process writes to stdout, where Lambda's log capture (and the
//! EMF parser) would read them.
//!
//! The binaries are built by `cargo build --bins` (scripts/test.sh does it before the tests).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

/// How an invocation ended: the function's answer or its reported error.
#[derive(Debug)]
pub enum Outcome {
    Response(serde_json::Value),
    Error(serde_json::Value),
}

type Answers = Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>;
/// When the process first asked for an event (its init ended), and when it asked last.
type Polls = Arc<Mutex<(Option<Instant>, Option<Instant>)>>;

/// A function binary running against the fake Runtime API.
pub struct Sandbox {
    child: Child,
    events: mpsc::UnboundedSender<(String, String)>,
    answers: Answers,
    stdout: Arc<Mutex<Vec<String>>>,
    polls: Polls,
    started: Instant,
}

/// `target/debug/<name>`, next to the test binary's `deps/` directory.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the function binaries first (cargo build --bins; scripts/test.sh does)",
        path.display()
    );
    path
}

impl Sandbox {
    /// Starts `binary` with the environment Lambda gives a function plus `env`.
    pub async fn start(binary: PathBuf, function_name: &str, env: &[(&str, String)]) -> Sandbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (events, receiver) = mpsc::unbounded_channel::<(String, String)>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let answers: Answers = Arc::default();
        let polls: Polls = Arc::default();
        tokio::spawn(serve(listener, receiver, answers.clone(), polls.clone()));
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("start the function binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stdout.take().expect("stdout");
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Sandbox {
            child,
            events,
            answers,
            stdout,
            polls,
            started,
        }
    }

    /// The time from starting the process to its first request for an event (its init, as
    /// Lambda's Init Duration counts it), once it has asked; `None` before.
    pub fn init_time(&self) -> Option<Duration> {
        self.polls.lock().unwrap().0.map(|t| t - self.started)
    }

    /// Waits (up to `limit`) until the process has finished its init and asks for an event.
    pub async fn wait_for_init(&self, limit: Duration) -> Option<Duration> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(t) = self.init_time() {
                return Some(t);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        None
    }

    /// The process id (to read its memory and CPU time from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Invokes the function with `event` and waits for its answer. Returns the invocation's
    /// request id and outcome.
    pub async fn invoke(&self, event: &str) -> (String, Outcome) {
        let id = ulid::Ulid::generate().to_string();
        let (tx, rx) = oneshot::channel();
        self.answers.lock().unwrap().insert(id.clone(), tx);
        self.events
            .send((id.clone(), event.to_owned()))
            .expect("runtime api");
        let outcome = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("the function answered within 30 s")
            .expect("answer");
        (id, outcome)
    }

    /// The lines written to stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stdout has a line `found` accepts (the pipe is read by a thread).
    pub async fn wait_for_line(&self, found: impl Fn(&str) -> bool) -> String {
        for _ in 0..200 {
            if let Some(line) = self.stdout().into_iter().find(|l| found(l)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no such line on stdout; it has:\n{}", self.stdout().join("\n"));
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Events = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, String)>>>;

async fn serve(listener: tokio::net::TcpListener, events: Events, answers: Answers, polls: Polls) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (events, answers, polls) = (events.clone(), answers.clone(), polls.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, events.clone(), answers.clone(), polls.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    events: Events,
    answers: Answers,
    polls: Polls,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    const PREFIX: &str = "/2018-06-01/runtime/";
    let path = req.uri().path().to_owned();
    let empty = |status: u16| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .expect("response")
    };
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(empty(404));
    };
    if rest == "invocation/next" {
        {
            let mut polls = polls.lock().unwrap();
            let now = Instant::now();
            polls.0.get_or_insert(now);
            polls.1 = Some(now);
        }
        let Some((id, event)) = events.lock().await.recv().await else {
            return Ok(empty(500));
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
        return Ok(hyper::Response::builder()
            .status(200)
            .header("lambda-runtime-aws-request-id", &id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
            )
            .body(Full::new(Bytes::from(event)))
            .expect("response"));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let parts: Vec<&str> = rest.split('/').collect();
    if let ["invocation", id, kind @ ("response" | "error")] = parts.as_slice() {
        let outcome = match *kind {
            "response" => Outcome::Response(value),
            _ => Outcome::Error(value),
        };
        if let Some(tx) = answers.lock().unwrap().remove(*id) {
            let _ = tx.send(outcome);
        }
        return Ok(empty(202));
    }
    if rest == "init/error" {
        eprintln!("the function failed its init: {value}");
        return Ok(empty(202));
    }
    Ok(empty(404))
}
