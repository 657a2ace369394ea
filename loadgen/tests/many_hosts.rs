//! loadgen for many hosts, against small WebSocket servers run in this
//! process: `--reconnect` after a server goes away (close 1001, with a
//! message left unanswered), `--start-at` as a start barrier, and
//! `loadgen merge` of JSON reports, whose histograms add up exactly.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;

mod common;

use common::{assert_ran_on, loadgen_command, Io};

/// What the test server does with connection number `index` (0-based).
#[derive(Clone, Copy)]
enum Plan {
    /// Echo every message after `delay`.
    Echo { delay: Duration },
    /// The first `drops` connections echo `n` messages, then read one more
    /// without answering it and close with 1001 (a host going away with a
    /// message in flight); every later connection echoes, except that the
    /// first `refuse` of them get HTTP 503.
    GoAway {
        drops: usize,
        n: usize,
        refuse: usize,
    },
}

struct TestServer {
    url: String,
    /// Wall-clock time of every accepted TCP connection.
    accepted_at: Arc<Mutex<Vec<SystemTime>>>,
}

fn serve(plan: Plan) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let accepted_at = Arc::new(Mutex::new(Vec::new()));
    let seen = accepted_at.clone();
    let count = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            seen.lock().unwrap().push(SystemTime::now());
            let index = count.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || handle(stream, plan, index));
        }
    });
    TestServer { url, accepted_at }
}

#[allow(clippy::result_large_err)] // the callback type is tungstenite's
fn handle(stream: TcpStream, plan: Plan, index: usize) {
    stream.set_nodelay(true).unwrap();
    let (delay, go_away_after) = match plan {
        Plan::Echo { delay } => (delay, None),
        Plan::GoAway { drops, n, .. } if index < drops => (Duration::ZERO, Some(n)),
        Plan::GoAway { drops, refuse, .. } if index < drops + refuse => {
            let _ = tungstenite::accept_hdr(stream, |_: &Request, _: Response| {
                let busy: ErrorResponse = tungstenite::http::Response::builder()
                    .status(503)
                    .body(Some("restarting".into()))
                    .unwrap();
                Err(busy)
            });
            return;
        }
        Plan::GoAway { .. } => (Duration::ZERO, None),
    };
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let mut echoed = 0;
    loop {
        let Ok(msg) = ws.read() else { return };
        if !(msg.is_text() || msg.is_binary()) {
            continue;
        }
        if go_away_after == Some(echoed) {
            // This message stays unanswered, as on a host that stops.
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "restarting".into(),
            }));
            let _ = ws.flush();
            // Wait for the client's close reply, as the engine does.
            while ws.read().is_ok() {}
            return;
        }
        thread::sleep(delay);
        if ws.send(msg).is_err() {
            return;
        }
        echoed += 1;
    }
}

fn tmp(io: Io, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-many-{}-{io}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Starts the real binary on `io` with `args` (plus `--quiet`).
fn spawn(io: Io, args: &[&str]) -> std::process::Child {
    loadgen_command(io)
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s) for a loadgen and collects its output.
fn finish(mut child: std::process::Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadgen did not finish in 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs loadgen on `io` with `args` and `--json FILE`; returns the exit
/// code and the report, which must say it ran on `io`.
fn run(io: Io, name: &str, args: &[&str]) -> (i32, Value, Output) {
    let json = tmp(io, &format!("{name}.json"));
    let mut all = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = finish(spawn(io, &all));
    let report = read_json(&json, &out);
    assert_ran_on(&report, io);
    (out.status.code().unwrap_or(-1), report, out)
}

fn read_json(path: &Path, out: &Output) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "no JSON at {} ({e}); stdout:\n{}\nstderr:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn reconnect_resends_the_unanswered_message_and_loses_nothing(io: Io) {
    // Both connections are dropped with one message unanswered; the first
    // two reconnect attempts meet a 503 and are retried.
    let s = serve(Plan::GoAway {
        drops: 2,
        n: 30,
        refuse: 2,
    });
    let (code, j, out) = run(
        io,
        "reconnect-open",
        &[
            &s.url,
            "--reconnect",
            "--mode",
            "open",
            "--rate",
            "200",
            "-c",
            "2",
            "-d",
            "2",
            "-w",
            "0",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        code,
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(j["reconnect"]["enabled"], true);
    assert_eq!(num(&j, "reconnect.reconnects"), 2.0, "{j:#}");
    assert_eq!(num(&j, "reconnect.dropped.closed_by_server"), 2.0);
    assert_eq!(num(&j, "reconnect.failed_attempts.http_503"), 2.0);
    assert!(num(&j, "reconnect.resent") >= 2.0, "{j:#}");
    assert_eq!(num(&j, "reconnect.echoes_lost"), 0.0);
    assert_eq!(num(&j, "errors.total"), 0.0, "no order or content error");
    assert_eq!(j["connections"]["lost"], serde_json::json!({}));
    assert_eq!(
        j["connections"]["reasons"]["closed_by_server"],
        "server sent Close (1001)"
    );
    // 2 connections x 200 Hz x 2 s, every tick sent and echoed, the ones
    // missed while reconnecting late (on a loaded machine some of those
    // echoes land after the window: 745 were seen).
    let messages = num(&j, "messages");
    assert!((700.0..=800.0).contains(&messages), "{messages} messages");
    assert!(stdout.contains("reconnects   2 after 2 drops"), "{stdout}");
}

fn reconnect_in_closed_mode_with_a_window(io: Io) {
    let s = serve(Plan::GoAway {
        drops: 1,
        n: 50,
        refuse: 0,
    });
    let (code, j, out) = run(
        io,
        "reconnect-closed",
        &[
            &s.url,
            "--reconnect",
            "-c",
            "1",
            "-k",
            "4",
            "-d",
            "1",
            "-w",
            "0",
        ],
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(num(&j, "reconnect.reconnects"), 1.0);
    // The unanswered message, and any sent after it before the close came
    // (at most the window of 4), went again on the new connection.
    let resent = num(&j, "reconnect.resent");
    assert!((1.0..=4.0).contains(&resent), "{resent} resent");
    assert_eq!(num(&j, "reconnect.echoes_lost"), 0.0);
    assert_eq!(num(&j, "errors.total"), 0.0);
}

fn without_reconnect_the_unanswered_messages_are_lost_echoes(io: Io) {
    let s = serve(Plan::GoAway {
        drops: 2,
        n: 20,
        refuse: 0,
    });
    let (code, j, _) = run(
        io,
        "no-reconnect",
        &[&s.url, "-c", "2", "-d", "1", "-w", "0"],
    );
    assert_eq!(code, 5);
    assert_eq!(num(&j, "connections.lost.closed_by_server"), 2.0);
    // Closed loop, one in flight: exactly one unanswered message each.
    assert_eq!(num(&j, "reconnect.echoes_lost"), 2.0);
    assert_eq!(num(&j, "reconnect.reconnects"), 0.0);
    assert_eq!(j["reconnect"]["enabled"], false);
}

fn start_at_holds_the_load_until_the_given_time(io: Io) {
    let s = serve(Plan::Echo {
        delay: Duration::ZERO,
    });
    let start = unix_now() + 1.5;
    let at = format!("{start:.3}");
    let (code, j, _) = run(
        io,
        "start-at",
        &[
            &s.url,
            "--start-at",
            &at,
            "-c",
            "2",
            "-d",
            "0.5",
            "-w",
            "0.5",
        ],
    );
    assert_eq!(code, 0);
    let accepted = s.accepted_at.lock().unwrap().clone();
    assert_eq!(accepted.len(), 2);
    for t in accepted {
        let t = t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(
            t >= start - 0.002 && t < start + 0.5,
            "connected at {t:.3}, start at {start:.3}"
        );
    }
    // The measured window starts after the warmup.
    let from = num(&j, "measured_from_unix_s");
    assert!((from - (start + 0.5)).abs() < 0.01, "{from} vs {start}");

    // A time in the past is refused.
    let out = finish(spawn(io, &[&s.url, "--start-at", "1000000000", "-d", "1"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--start-at passed"), "{stderr}");
}

fn ctrl_c_while_waiting_for_the_start_ends_the_run_as_interrupted(io: Io) {
    let s = serve(Plan::Echo {
        delay: Duration::ZERO,
    });
    let at = format!("{:.3}", unix_now() + 30.0);
    let json = tmp(io, "start-at-sigint.json");
    let child = spawn(
        io,
        &[
            &s.url,
            "--start-at",
            &at,
            "-c",
            "3",
            "-d",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = finish(child);
    assert!(sent.elapsed() < Duration::from_secs(5), "it waited on");
    assert_eq!(out.status.code(), Some(130));
    let j = read_json(&json, &out);
    assert_eq!(j["exit"]["status"], "interrupted");
    assert!(s.accepted_at.lock().unwrap().is_empty(), "it connected");
}

/// The corrected histogram carried by a JSON report, decoded here with the
/// `hdrhistogram` crate (independently of loadgen's code).
fn histogram(report: &Value) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let text = report["histograms"]["corrected"]
        .as_str()
        .expect("the report carries its histogram");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .unwrap()
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

fn merge(io: Io, inputs: &[&Path], name: &str) -> Value {
    let json = tmp(io, name);
    let mut cmd = loadgen_command(io);
    cmd.arg("merge").args(inputs).arg("--json").arg(&json);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(&json, &out)
}

fn two_loadgens_with_one_start_merge_exactly_from_json_and_from_hlog(io: Io) {
    let fast = serve(Plan::Echo {
        delay: Duration::ZERO,
    });
    let slow = serve(Plan::Echo {
        delay: Duration::from_millis(3),
    });
    let at = format!("{:.3}", unix_now() + 1.0);
    let (a_json, b_json) = (tmp(io, "a.json"), tmp(io, "b.json"));
    let (a_hlog, b_hlog) = (tmp(io, "a.hlog"), tmp(io, "b.hlog"));
    let common = ["--start-at", &at, "-c", "2", "-d", "1.5", "-w", "0.2"];
    let args = |url: &str, json: &Path, hlog: &Path| -> Vec<String> {
        let mut v = vec![url.to_string()];
        v.extend(common.iter().map(|s| s.to_string()));
        v.extend([
            "--json".into(),
            json.display().to_string(),
            "--hlog".into(),
            hlog.display().to_string(),
        ]);
        v
    };
    let a = spawn(
        io,
        &args(&fast.url, &a_json, &a_hlog)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let b = spawn(
        io,
        &args(&slow.url, &b_json, &b_hlog)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let (a_out, b_out) = (finish(a), finish(b));
    assert_eq!(
        (a_out.status.code(), b_out.status.code()),
        (Some(0), Some(0))
    );
    let (ra, rb) = (read_json(&a_json, &a_out), read_json(&b_json, &b_out));

    let mut all = histogram(&ra);
    all.add(histogram(&rb)).unwrap();
    let from_json = merge(io, &[&a_json, &b_json], "merged-json.json");
    let from_hlog = merge(io, &[&a_hlog, &b_hlog], "merged-hlog.json");
    for (key, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99_9", 0.999),
        ("p99_99", 0.9999),
    ] {
        let want = us(all.value_at_quantile(q));
        let path = format!("latency_us.corrected.{key}");
        assert_eq!(num(&from_json, &path), want, "{key} of the JSON merge");
        assert_eq!(num(&from_hlog, &path), want, "{key} of the hlog merge");
    }
    assert_eq!(num(&from_json, "latency_us.corrected.max"), us(all.max()));
    assert_eq!(
        num(&from_json, "latency_us.corrected.count"),
        all.len() as f64
    );
    assert_eq!(
        num(&from_hlog, "latency_us.corrected.count"),
        all.len() as f64
    );
    assert_eq!(histogram(&from_json), all, "the merged histogram itself");
    // Counts add up; the windows were the same.
    assert_eq!(
        num(&from_json, "messages"),
        num(&ra, "messages") + num(&rb, "messages")
    );
    assert_eq!(all.len() as f64, num(&from_json, "messages"));
    assert_eq!(num(&from_json, "config.connections"), 4.0);
    assert_eq!(from_json["windows_aligned"], true, "{from_json:#}");
    assert_eq!(
        num(&ra, "measured_from_unix_s"),
        num(&rb, "measured_from_unix_s")
    );
    assert_eq!(num(&from_json, "exit.code"), 0.0);
    assert_eq!(from_json["inputs"].as_array().unwrap().len(), 2);

    // A log and a report cannot be mixed.
    let out = loadgen_command(io)
        .arg("merge")
        .args([&a_json, &b_hlog])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

on_both_drivers!(
    reconnect_resends_the_unanswered_message_and_loses_nothing,
    reconnect_in_closed_mode_with_a_window,
    without_reconnect_the_unanswered_messages_are_lost_echoes,
    start_at_holds_the_load_until_the_given_time,
    ctrl_c_while_waiting_for_the_start_ends_the_run_as_interrupted,
    two_loadgens_with_one_start_merge_exactly_from_json_and_from_hlog,
);
