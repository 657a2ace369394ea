//! `loadgen soak` against tiny WebSocket servers with known faults (a
//! correct echo, a corrupted byte, a message never echoed, a server that
//! closes, one that answers a Close without the echoes still owed): the
//! real binary runs and its `--json` report, CSV and exit code must name
//! exactly the fault. Each soak holds a few dozen connections for 2 s.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::Value;
use tungstenite::Message;

mod common;

use common::{assert_ran_on, loadgen_command, Io};

static SERIAL: Mutex<()> = Mutex::new(());

/// What the test server does wrong, on one connection only, so the fault
/// is counted once: the first connection to reach the fault's message
/// takes it (see [`Fault::trigger`]). Not simply the first connection
/// accepted: which class that is depends on the scheduling, and churn
/// may close it before its 5th message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing: a correct echo server.
    None,
    /// Flip a byte of the 5th echo.
    CorruptFifth,
    /// Never echo the 5th message (echo the rest).
    SkipFifth,
    /// Close (1001) after echoing 5 messages.
    CloseAfterFive,
    /// Stop echoing after 5 messages, but answer the client's Close.
    WithholdThenClose,
}

impl Fault {
    /// The message (1-based, per connection) at which the fault starts.
    fn trigger(self) -> usize {
        match self {
            Fault::None => usize::MAX,
            Fault::CorruptFifth | Fault::SkipFifth => 5,
            Fault::CloseAfterFive | Fault::WithholdThenClose => 6,
        }
    }
}

fn serve(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let taken = Arc::new(AtomicBool::new(false));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let taken = taken.clone();
            thread::spawn(move || echo(stream, fault, &taken));
        }
    });
    url
}

fn echo(stream: TcpStream, fault: Fault, taken: &AtomicBool) {
    stream.set_nodelay(true).unwrap();
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let mut count = 0usize;
    // Whether this connection took the fault.
    let mut faulty = false;
    loop {
        // tungstenite answers a Close by itself; read() then ends the loop.
        let msg = match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => m,
            Ok(_) => continue,
            Err(_) => return,
        };
        count += 1;
        if count == fault.trigger() {
            faulty = taken
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        }
        let fault = if faulty { fault } else { Fault::None };
        let msg = match (fault, msg) {
            (Fault::CorruptFifth, Message::Binary(mut data)) if count == 5 => {
                let last = data.len() - 1;
                data[last] ^= 0x20;
                Message::Binary(data)
            }
            (Fault::CorruptFifth, Message::Text(text)) if count == 5 => {
                Message::Text(text.to_uppercase())
            }
            (Fault::SkipFifth, _) if count == 5 => continue,
            (Fault::CloseAfterFive, _) if count > 5 => {
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: tungstenite::protocol::frame::coding::CloseCode::Away,
                    reason: "".into(),
                }));
                let _ = ws.flush();
                // Let the client answer, then drop.
                while ws.read().is_ok() {}
                return;
            }
            (Fault::WithholdThenClose, _) if count > 5 => continue,
            (_, m) => m,
        };
        if ws.send(msg).is_err() {
            return;
        }
    }
}

struct Soak {
    code: i32,
    report: Value,
    csv_rows: usize,
    stdout: String,
}

fn tmp(io: Io, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-soak-it-{}-{io}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `loadgen soak` on `url`: 40 connections (4 players at 128 Hz, 2
/// bursts of 2 x 16 KiB every 500 ms, a lobby at 20 Hz), held 2 s with 10
/// closes and reconnects a second.
fn soak(io: Io, url: &str, name: &str) -> Soak {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let json = tmp(io, &format!("{name}.json"));
    let csv = tmp(io, &format!("{name}.csv"));
    let out = loadgen_command(io)
        .args(["soak", url, "-c", "40", "--players", "4", "--bursts", "2"])
        .args(["--burst-messages", "2", "--burst-every", "500ms"])
        .args(["--lobby-rate", "20", "-d", "2s", "--churn", "10"])
        .args(["--connect-rate", "400", "--close-timeout", "2s", "--quiet"])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("run loadgen soak");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("the JSON report");
    assert_ran_on(&report, io);
    let csv_rows = std::fs::read_to_string(&csv).unwrap().lines().count() - 1;
    Soak {
        code: out.status.code().unwrap_or(-1),
        report,
        csv_rows,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn total(r: &Value, field: &str) -> u64 {
    r["totals"][field].as_u64().unwrap()
}

fn reason_sum(r: &Value, field: &str) -> u64 {
    r["totals"][field]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn a_correct_server_passes_with_every_echo_and_close_checked(io: Io) {
    let url = serve(Fault::None);
    let s = soak(io, &url, "clean");
    assert_eq!(s.code, 0, "{}", s.stdout);
    let r = &s.report;
    assert_eq!(r["pass"], true);
    assert_eq!(total(r, "lost"), 0);
    assert_eq!(total(r, "corrupted"), 0);
    assert_eq!(reason_sum(r, "unexpected_closes"), 0);
    // 40 initial + 10/s of churn for 2 s (20 more, fewer when the machine
    // holds loadgen up: churn missed for over 100 ms is skipped, not made
    // up in a burst); every one closed cleanly.
    assert!(total(r, "opened") >= 45, "{}", total(r, "opened"));
    assert_eq!(total(r, "closes"), total(r, "opened"));
    assert_eq!(total(r, "closed_clean"), total(r, "closes"));
    assert_eq!(total(r, "echoes"), total(r, "sent"));
    assert!(total(r, "sent") > 1000);
    for class in r["latency_us"].as_array().unwrap() {
        assert!(class["corrected"]["count"].as_u64().unwrap() > 0, "{class}");
    }
    // One row per second of ramp, hold and drain, in the CSV and the JSON.
    let series = r["series"].as_array().unwrap();
    assert_eq!(s.csv_rows, series.len());
    assert!(series.iter().filter(|row| row["phase"] == "hold").count() >= 2);
    assert_eq!(series.last().unwrap()["open"], 0);
    assert!(s.stdout.contains("soak passed"), "{}", s.stdout);
}

fn a_corrupted_echo_is_counted_and_fails_the_soak(io: Io) {
    let url = serve(Fault::CorruptFifth);
    let s = soak(io, &url, "corrupt");
    assert_eq!(s.code, 4, "{}", s.stdout);
    assert_eq!(total(&s.report, "corrupted"), 1);
    assert_eq!(total(&s.report, "lost"), 0);
    assert_eq!(s.report["totals"]["corrupted_by_reason"]["content"], 1);
    assert!(
        s.stdout.contains("[FAIL] no corrupted echoes"),
        "{}",
        s.stdout
    );
}

fn an_echo_that_never_comes_is_lost(io: Io) {
    let url = serve(Fault::SkipFifth);
    let s = soak(io, &url, "skip");
    assert_eq!(s.code, 4, "{}", s.stdout);
    let totals = &s.report["totals"];
    // One message is still owed at the close, and every later echo on that
    // connection answers an earlier message than it should: an order
    // error whatever its length (the sizes are random), never a length or
    // content error. The faulty connection is the first to send 5
    // messages, a player, whose 6th goes out one tick (8 ms) after the
    // 5th, in the ramp, before any churn could close it.
    assert_eq!(total(&s.report, "lost"), 1, "{totals:#}");
    let order = totals["corrupted_by_reason"]["order"].as_u64().unwrap_or(0);
    assert!(order >= 1, "{totals:#}");
    assert_eq!(total(&s.report, "corrupted"), order, "{totals:#}");
}

fn a_server_close_is_an_unexpected_close(io: Io) {
    let url = serve(Fault::CloseAfterFive);
    let s = soak(io, &url, "close");
    // The server closed instead of echoing the 6th message: that message
    // is lost too, and lost echoes decide the exit code.
    assert_eq!(s.code, 4, "{}", s.stdout);
    assert_eq!(
        s.report["totals"]["unexpected_closes"]["closed_by_server"],
        1
    );
    assert_eq!(reason_sum(&s.report, "unexpected_closes"), 1);
    assert!(total(&s.report, "lost") >= 1);
    assert_eq!(total(&s.report, "corrupted"), 0);
    assert!(
        s.stdout.contains("[FAIL] no unexpected closes"),
        "{}",
        s.stdout
    );
}

fn echoes_owed_at_a_close_are_lost(io: Io) {
    let url = serve(Fault::WithholdThenClose);
    let s = soak(io, &url, "withhold");
    assert_eq!(s.code, 4, "{}", s.stdout);
    let lost = total(&s.report, "lost");
    assert!(
        lost >= 1,
        "the withheld messages still in flight at the close"
    );
    // The close itself was answered, so it is not an unexpected close.
    assert_eq!(reason_sum(&s.report, "unexpected_closes"), 0);
    assert_eq!(total(&s.report, "corrupted"), 0);
}

on_both_drivers!(
    a_correct_server_passes_with_every_echo_and_close_checked,
    a_corrupted_echo_is_counted_and_fails_the_soak,
    an_echo_that_never_comes_is_lost,
    a_server_close_is_an_unexpected_close,
    echoes_owed_at_a_close_are_lost,
);
