//! Scaling out, on one machine: five "hosts" in network namespaces that the
//! test builds itself (see [`common::netns`]: veth pairs to a bridge in a
//! namespace of its own, private addresses that exist only in there, no
//! route out; all deleted at the end, also when the test fails).
//!
//! - `engine-a`, `engine-b`: one ringecho each, `--listen` on its address;
//! - `lb`: HAProxy with exactly `deploy/haproxy/ringecho.cfg`;
//! - `client-1`, `client-2`: one loadgen each, through HAProxy, with
//!   `--reconnect` and the same `--start-at`.
//!
//! It shows:
//! 1. traffic spreads over both engines (their `/metrics`);
//! 2. `loadgen merge` of the two `.hlog` files (and of the two JSON
//!    reports) gives exactly the percentiles of one histogram of all the
//!    samples;
//! 3. a rolling restart: engine A gets SIGTERM in the middle of the run; its
//!    clients get 1001, reconnect through HAProxy and land on engine B;
//!    loadgen reports the reconnects, and 0 lost or corrupted echoes.
//!
//! One `wss://` client on `client-1` also checks HAProxy's certificate
//! against the test's CA across the network. The figures go to
//! `target/artifacts/scale-out/summary.md` (with the logs, reports and
//! interval logs beside it); `results/scale-out.md` is such a run.

mod common;

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::haproxy::{Haproxy, Settings};
use common::metrics::Scrape;
use common::netns::{lab_namespaces, Lab};
use common::process::KillOnDrop;
use common::server::BINARY;
use common::tls::{connector_trusting, TestPki};
use common::ws;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const LB: Ipv4Addr = Ipv4Addr::new(10, 77, 13, 10);
const ENGINE_A: Ipv4Addr = Ipv4Addr::new(10, 77, 13, 11);
const ENGINE_B: Ipv4Addr = Ipv4Addr::new(10, 77, 13, 12);
const CLIENT_1: Ipv4Addr = Ipv4Addr::new(10, 77, 13, 21);
const CLIENT_2: Ipv4Addr = Ipv4Addr::new(10, 77, 13, 22);
const ENGINE_PORT: u16 = 5000;
const WS_PORT: u16 = 8080;
const WSS_PORT: u16 = 8443;

/// Each loadgen: this many players at this tick rate, small game messages.
const PLAYERS: usize = 50;
const TICK_HZ: u32 = 50;
const SIZE: &str = "32..256";
const WARMUP_S: f64 = 1.0;
const DURATION_S: f64 = 8.0;
/// When, after the measured window opens, the spread is read and engine A
/// is stopped.
const SPREAD_AT_S: f64 = 2.0;
const SIGTERM_AT_S: f64 = 3.0;
/// When, after the measured window opens, engine B must hold everyone.
const ALL_ON_B_AT_S: f64 = 5.5;
/// The whole test, from building the network to removing it.
const TEST_LIMIT: Duration = Duration::from_secs(120);

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// `target/artifacts/scale-out/`.
fn artifacts_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target dir");
    let dir = target.join("artifacts/scale-out");
    std::fs::create_dir_all(&dir).expect("create target/artifacts/scale-out");
    dir
}

/// Waits until `log` has the engine's startup line.
fn wait_for_startup(engine: &mut KillOnDrop, log: &Path) {
    let deadline = Instant::now() + common::NETWORK_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("listening on http://") {
            return;
        }
        if let Some(status) = engine.exit_status() {
            panic!("ringecho exited ({status}):\n{text}");
        }
        assert!(Instant::now() < deadline, "ringecho did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts ringecho on host `label`, listening on `ip`.
fn start_engine(lab: &Lab, label: &str, ip: Ipv4Addr, log: &Path) -> KillOnDrop {
    let file = std::fs::File::create(log).expect("create the engine log");
    let listen = addr(ip, ENGINE_PORT).to_string();
    let mut engine = KillOnDrop::spawn(
        lab.command(label, BINARY)
            .args(["--listen", &listen, "--threads", "1", "--no-pin"])
            .args(["--keep-alive-interval", "30s", "--shutdown-timeout", "5s"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file),
    );
    wait_for_startup(&mut engine, log);
    // `ip netns exec` execs the engine, so this pid is the engine's own.
    let pid = engine.child().id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "ringecho", "pid {pid} is not the engine");
    engine
}

/// Scrapes `/metrics` of the engine at `ip` from host `from`.
fn scrape(lab: &Lab, from: &str, ip: Ipv4Addr) -> Scrape {
    lab.run_on(from, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(Scrape::fetch(addr(ip, ENGINE_PORT)))
    })
}

/// Sleeps until `at` (wall clock), if it is still ahead.
fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// The corrected histogram a JSON report carries, decoded here with the
/// `hdrhistogram` crate.
fn histogram(report: &Value) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    let text = report["histograms"]["corrected"]
        .as_str()
        .expect("the report carries its histograms");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .expect("a V2 histogram")
}

/// Microseconds with one decimal, as loadgen reports them.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// `loadgen merge INPUTS --json OUT`, returning the merged JSON.
fn merge(loadgen: &Path, inputs: &[PathBuf], out: &Path) -> Value {
    let output = Command::new(loadgen)
        .arg("merge")
        .args(inputs)
        .arg("--json")
        .arg(out)
        .output()
        .expect("run loadgen merge");
    assert!(
        output.status.success(),
        "loadgen merge failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_json(out)
}

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99_9", 0.999),
    ("p99_99", 0.9999),
];

#[test]
fn two_engines_behind_haproxy_two_loadgens_and_a_rolling_restart() {
    let started = Instant::now();
    let loadgen = common::loadgen::binary();
    let out = artifacts_dir();
    let pid = std::process::id();
    let lab = Lab::create(&[
        ("lb", LB),
        ("engine-a", ENGINE_A),
        ("engine-b", ENGINE_B),
        ("client-1", CLIENT_1),
        ("client-2", CLIENT_2),
    ]);
    assert_eq!(lab_namespaces(pid).len(), 6, "five hosts and the bridge");
    run(&lab, &loadgen, &out);
    drop(lab);
    assert!(
        lab_namespaces(pid).is_empty(),
        "namespaces left: {:?}",
        lab_namespaces(pid)
    );
    assert!(
        started.elapsed() < TEST_LIMIT,
        "took {:?}",
        started.elapsed()
    );
}

fn run(lab: &Lab, loadgen: &Path, out: &Path) {
    let mut engine_a = start_engine(lab, "engine-a", ENGINE_A, &out.join("engine-a.log"));
    let _engine_b = start_engine(lab, "engine-b", ENGINE_B, &out.join("engine-b.log"));
    let certs = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::create(certs.path(), "ringecho test CA", &[&LB.to_string()]);
    let settings = Settings {
        wss_bind: addr(LB, WSS_PORT),
        ws_bind: addr(LB, WS_PORT),
        cert: pki.server_pem.clone(),
        engine_a: addr(ENGINE_A, ENGINE_PORT),
        engine_b: addr(ENGINE_B, ENGINE_PORT),
        admin_socket: certs.path().join("admin.sock"),
    };
    let prefix = lab.exec_prefix("lb");
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let haproxy = Haproxy::start(settings, &prefix, &out.join("haproxy.log"));

    // One player over wss:// from another host, checking the certificate.
    let ca = pki.ca_cert.clone();
    lab.run_on("client-1", move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                let url = format!("wss://{LB}:{WSS_PORT}/ws");
                let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
                    url,
                    None,
                    false,
                    Some(connector_trusting(&ca)),
                )
                .await
                .expect("wss:// through HAProxy from client-1");
                ws::assert_echo(&mut socket, Message::text("wss from client-1")).await;
                ws::close(socket).await;
            })
    });

    // Two loadgens, one start.
    let start = SystemTime::now() + Duration::from_secs(2);
    let measure_from = start + Duration::from_secs_f64(WARMUP_S);
    let url = format!("ws://{LB}:{WS_PORT}/ws");
    let clients = ["client-1", "client-2"];
    let mut runs = Vec::new();
    for client in clients {
        let json = out.join(format!("{client}.json"));
        let hlog = out.join(format!("{client}.hlog"));
        let stdout = std::fs::File::create(out.join(format!("{client}.txt"))).expect("create");
        let child = KillOnDrop::spawn(
            lab.command(client, loadgen)
                .arg(&url)
                .args(["--mode", "open", "--rate", &TICK_HZ.to_string()])
                .args(["-c", &PLAYERS.to_string(), "--size", SIZE])
                .args(["-w", &WARMUP_S.to_string(), "-d", &DURATION_S.to_string()])
                .args(["--reconnect", "--quiet"])
                .args(["--start-at", &format!("{:.3}", unix_s(start))])
                .arg("--json")
                .arg(&json)
                .arg("--hlog")
                .arg(&hlog)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(Stdio::piped()),
        );
        runs.push((child, json, hlog));
    }

    // 1. Traffic spreads over both engines.
    sleep_until(measure_from + Duration::from_secs_f64(SPREAD_AT_S));
    let a = scrape(lab, "lb", ENGINE_A);
    let b = scrape(lab, "lb", ENGINE_B);
    let a_conns = a.sum("ringecho_connections", &[]);
    let b_conns = b.sum("ringecho_connections", &[]);
    let a_msgs = a.sum("ringecho_messages_received_total", &[]);
    let b_msgs = b.sum("ringecho_messages_received_total", &[]);
    let total = (2 * PLAYERS) as f64;
    assert_eq!(a_conns + b_conns, total, "every player is on an engine");
    assert!(
        (a_conns - b_conns).abs() <= 2.0,
        "leastconn spread {a_conns} / {b_conns}"
    );
    assert!(a_msgs > 0.0 && b_msgs > 0.0, "{a_msgs} / {b_msgs} messages");

    // 3. Rolling restart: stop engine A in the middle of the run.
    sleep_until(measure_from + Duration::from_secs_f64(SIGTERM_AT_S));
    let engine_a_pid = libc::pid_t::try_from(engine_a.child().id()).expect("pid");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own
    // child (the engine itself, see start_engine), not yet reaped.
    assert_eq!(unsafe { libc::kill(engine_a_pid, libc::SIGTERM) }, 0);
    let stopping = Instant::now();
    let deadline = stopping + Duration::from_secs(10);
    let a_status = loop {
        if let Some(status) = engine_a.exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "engine A still runs 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let a_stop_time = stopping.elapsed();
    assert!(a_status.success(), "engine A exited with {a_status}");
    let a_log = std::fs::read_to_string(out.join("engine-a.log")).unwrap_or_default();
    assert!(
        !a_log.contains("shutdown timeout"),
        "engine A's clients did not all close in time:\n{a_log}"
    );

    sleep_until(measure_from + Duration::from_secs_f64(ALL_ON_B_AT_S));
    let b_after = scrape(lab, "lb", ENGINE_B);
    let b_conns_after = b_after.sum("ringecho_connections", &[]);
    assert_eq!(b_conns_after, total, "every player is on engine B");
    assert_eq!(
        haproxy.server_state("ringecho_ws", "engine-a"),
        0,
        "HAProxy's health checks took engine A out"
    );

    let mut reports = Vec::new();
    for (mut child, json, hlog) in runs {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.exit_status() {
                break status;
            }
            assert!(Instant::now() < deadline, "a loadgen did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.child().stderr.take() {
            use std::io::Read as _;
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(status.success(), "loadgen exited with {status}:\n{stderr}");
        reports.push((read_json(&json), json, hlog));
    }

    let mut dropped = 0.0;
    let mut reconnects = 0.0;
    for (r, json, _) in &reports {
        let name = json.display();
        assert_eq!(num(r, "errors.total"), 0.0, "{name}: corrupted echoes");
        assert_eq!(num(r, "reconnect.echoes_lost"), 0.0, "{name}: lost echoes");
        assert_eq!(r["connections"]["lost"], serde_json::json!({}), "{name}");
        assert_eq!(num(r, "connections.opened"), PLAYERS as f64, "{name}");
        for (reason, n) in r["reconnect"]["dropped"].as_object().expect("dropped") {
            assert_eq!(
                reason, "closed_by_server",
                "{name}: dropped {n} for {reason}"
            );
            assert_eq!(
                r["connections"]["reasons"][reason], "server sent Close (1001)",
                "{name}"
            );
        }
        dropped += num(r, "reconnect.dropped.closed_by_server");
        reconnects += num(r, "reconnect.reconnects");
    }
    // Exactly engine A's players were dropped, and each came back.
    assert_eq!(dropped, a_conns, "drops = engine A's players");
    assert_eq!(reconnects, a_conns, "every dropped player reconnected");

    // 2. Merging: the two hlogs, and the two reports, give the percentiles
    // of one histogram of all samples (from the reports' own histograms).
    let mut all = histogram(&reports[0].0);
    all.add(histogram(&reports[1].0)).expect("same bounds");
    let messages = num(&reports[0].0, "messages") + num(&reports[1].0, "messages");
    assert_eq!(all.len() as f64, messages, "one sample per echo");
    let hlogs: Vec<PathBuf> = reports.iter().map(|(_, _, h)| h.clone()).collect();
    let jsons: Vec<PathBuf> = reports.iter().map(|(_, j, _)| j.clone()).collect();
    let from_hlog = merge(loadgen, &hlogs, &out.join("merged-hlog.json"));
    let from_json = merge(loadgen, &jsons, &out.join("merged.json"));
    for (key, q) in QUANTILES {
        let want = us(all.value_at_quantile(q));
        let path = format!("latency_us.corrected.{key}");
        assert_eq!(num(&from_hlog, &path), want, "hlog merge {key}");
        assert_eq!(num(&from_json, &path), want, "report merge {key}");
    }
    for merged in [&from_hlog, &from_json] {
        assert_eq!(num(merged, "latency_us.corrected.max"), us(all.max()));
        assert_eq!(num(merged, "latency_us.corrected.count"), messages);
    }
    assert_eq!(histogram(&from_json), all, "the merged histogram itself");
    assert_eq!(from_json["windows_aligned"], true);
    assert_eq!(num(&from_json, "reconnect.reconnects"), a_conns);
    assert_eq!(num(&from_json, "exit.code"), 0.0);

    // How the reconnects got to B: HAProxy logs one line per WebSocket when
    // it ends; "+N" in the retries field means it was redispatched.
    let log = haproxy.log();
    let upgrades: Vec<&str> = log.lines().filter(|l| l.contains("GET /ws")).collect();
    assert!(
        upgrades.iter().all(|l| l.contains(" 101 ")),
        "an upgrade through HAProxy failed:\n{log}"
    );
    let redispatched = upgrades
        .iter()
        .filter(|l| {
            // actconn/feconn/beconn/srv_conn/retries
            l.split_whitespace()
                .nth(10)
                .and_then(|f| f.rsplit('/').next())
                .is_some_and(|retries| retries.starts_with('+'))
        })
        .count();

    let summary = summary(&Figures {
        a_conns,
        b_conns,
        a_msgs,
        b_msgs,
        a_stop_time,
        b_conns_after,
        redispatched,
        reports: reports.iter().map(|(r, j, _)| (r, j.as_path())).collect(),
        all: &all,
        from_hlog: &from_hlog,
        from_json: &from_json,
        seconds: per_second(&hlogs),
    });
    std::fs::write(out.join("summary.md"), &summary).expect("write summary.md");
    println!("{summary}");
}

/// What the run showed, for the summary.
struct Figures<'a> {
    a_conns: f64,
    b_conns: f64,
    a_msgs: f64,
    b_msgs: f64,
    a_stop_time: Duration,
    b_conns_after: f64,
    redispatched: usize,
    reports: Vec<(&'a Value, &'a Path)>,
    all: &'a hdrhistogram::Histogram<u64>,
    from_hlog: &'a Value,
    from_json: &'a Value,
    seconds: Vec<hdrhistogram::Histogram<u64>>,
}

fn latency_row(o: &mut String, name: &str, v: &Value) {
    let l = &v["latency_us"]["corrected"];
    let _ = writeln!(
        o,
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        l["count"], l["p50"], l["p90"], l["p99"], l["p99_9"], l["p99_99"], l["max"]
    );
}

/// The run's figures as Markdown.
fn summary(f: &Figures) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "2 loadgens x {PLAYERS} players x {TICK_HZ} Hz x {SIZE} B (open loop, \
         `--reconnect`, same `--start-at`), {WARMUP_S} s warmup + {DURATION_S} s measured, \
         through HAProxy to 2 engines; engine A gets SIGTERM {SIGTERM_AT_S} s into the \
         measured window.\n"
    );
    let _ = writeln!(o, "| | engine A | engine B |\n|---|---:|---:|");
    let _ = writeln!(
        o,
        "| WebSockets, {SPREAD_AT_S} s into the window | {} | {} |",
        f.a_conns, f.b_conns
    );
    let _ = writeln!(
        o,
        "| messages received by then | {} | {} |",
        f.a_msgs, f.b_msgs
    );
    let _ = writeln!(
        o,
        "| WebSockets, {ALL_ON_B_AT_S} s into the window | (stopped) | {} |\n",
        f.b_conns_after
    );
    let _ = writeln!(
        o,
        "Engine A exited 0, {:.0} ms after SIGTERM. {} of the reconnects were refused by \
         engine A (still up for HAProxy) and redispatched to B.\n",
        f.a_stop_time.as_secs_f64() * 1e3,
        f.redispatched
    );
    let _ = writeln!(
        o,
        "| loadgen | msg/s | echoes | dropped (1001) | reconnects | failed attempts | resent | echoes lost | bad echoes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (r, path) in &f.reports {
        let failed: u64 = r["reconnect"]["failed_attempts"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {failed} | {} | {} | {} |",
            path.file_name().unwrap_or_default().to_string_lossy(),
            r["msgs_per_sec"],
            r["messages"],
            r["reconnect"]["dropped"]["closed_by_server"]
                .as_u64()
                .unwrap_or(0),
            r["reconnect"]["reconnects"],
            r["reconnect"]["resent"],
            r["reconnect"]["echoes_lost"],
            r["errors"]["total"]
        );
    }
    let _ = writeln!(
        o,
        "\nCorrected round-trip latency (us), histograms added:\n\n| | samples | p50 | p90 | p99 | p99.9 | p99.99 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (r, path) in &f.reports {
        latency_row(
            &mut o,
            &path.file_name().unwrap_or_default().to_string_lossy(),
            r,
        );
    }
    latency_row(&mut o, "`loadgen merge` of the 2 .hlog", f.from_hlog);
    latency_row(&mut o, "`loadgen merge` of the 2 .json", f.from_json);
    let _ = writeln!(
        o,
        "| one histogram of all samples | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        f.all.len(),
        us(f.all.value_at_quantile(0.5)),
        us(f.all.value_at_quantile(0.9)),
        us(f.all.value_at_quantile(0.99)),
        us(f.all.value_at_quantile(0.999)),
        us(f.all.value_at_quantile(0.9999)),
        us(f.all.max())
    );
    let _ = writeln!(
        o,
        "\nThe mean of the two p99s would be {} us: not a percentile of anything.",
        f.from_json["mean_of_input_p99_us_do_not_use"]
    );
    let _ = writeln!(
        o,
        "\nSecond by second (both .hlog added per interval; engine A stopped in second {}):\n\n\
         | second | samples | p50 | p99 | max |\n|---:|---:|---:|---:|---:|",
        SIGTERM_AT_S as u64 + 1
    );
    for (i, h) in f.seconds.iter().enumerate() {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            i + 1,
            h.len(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.max())
        );
    }
    o
}

/// The corrected histograms of the intervals of several interval logs,
/// added interval by interval (the logs share one start, `--start-at`).
fn per_second(hlogs: &[PathBuf]) -> Vec<hdrhistogram::Histogram<u64>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut seconds: Vec<hdrhistogram::Histogram<u64>> = Vec::new();
    for path in hlogs {
        let bytes = std::fs::read(path).expect("read an hlog");
        let mut index = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            let LogEntry::Interval(iv) = entry.expect("a valid interval log") else {
                continue;
            };
            if iv.tag().is_some() {
                continue; // the uncorrected histograms
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .expect("base64");
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut raw.as_slice())
                .expect("a V2 histogram");
            if seconds.len() <= index {
                seconds.push(h);
            } else {
                seconds[index].add(&h).expect("same bounds");
            }
            index += 1;
        }
    }
    seconds
}
