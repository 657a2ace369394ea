//! The harness against the real binaries (debug builds, located or built
//! by `Binaries::locate`): every server starts pinned, is found by its
//! start-up line, echoes loadgen's traffic, shows its CPU time, RSS and
//! open connections in `/proc`, and stops cleanly on SIGTERM. Behaviour
//! only: nothing here judges speed.

use std::time::{Duration, Instant};

use bench::harness::{
    measure_closed, measure_fixed_rate_cpu, measure_idle_rss, Binaries, Build, Loadgen,
    RunningServer, ServerSpec, Window,
};
use ringecho::IoBackend;

fn binaries() -> Binaries {
    Binaries::locate(Build::Debug).expect("build or locate the debug binaries")
}

fn specs(b: &Binaries) -> Vec<(&'static str, ServerSpec)> {
    vec![
        (
            "ringecho-uring",
            ServerSpec::ringecho(&b.ringecho, IoBackend::Uring, 1),
        ),
        (
            "ringecho-epoll",
            ServerSpec::ringecho(&b.ringecho, IoBackend::Epoll, 1),
        ),
        ("fws_echo", ServerSpec::peer(&b.fws_echo, 1)),
        ("tungstenite_echo", ServerSpec::peer(&b.tungstenite_echo, 1)),
    ]
}

const SHORT: Window = Window {
    warmup: Duration::from_millis(300),
    measure: Duration::from_millis(700),
};

#[test]
fn every_server_echoes_and_is_measured() {
    let b = binaries();
    let loadgen = Loadgen::new(&b.loadgen, 0);
    for (name, spec) in specs(&b) {
        let server = RunningServer::start(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_ne!(server.addr().port(), 0, "{name}: a real port");
        assert!(server.ws_url().starts_with("ws://127.0.0.1:"));

        let m = measure_closed(&server, &loadgen, 4, 1024, &SHORT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(m.report.messages > 0, "{name}: {:?}", m.report);
        assert_eq!(m.report.errors.total, 0, "{name}: bad echoes");
        assert_eq!(m.report.connections.opened, 4, "{name}");
        assert!(m.server_cpu > Duration::ZERO, "{name}: server used CPU");
        assert!(m.cpu_us_per_msg.is_finite() && m.cpu_us_per_msg > 0.0);

        let f = measure_fixed_rate_cpu(&server, &loadgen, 4, 50.0, 20, &SHORT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(f.report.messages > 0, "{name}: {:?}", f.report);
        assert_eq!(f.report.config.mode, "open");

        assert!(server.rss_bytes().unwrap() > 0);
        let status = server.stop().unwrap();
        assert!(
            status.success(),
            "{name}: SIGTERM exits cleanly, got {status}"
        );
    }
}

#[test]
fn counts_idle_connections_and_their_memory() {
    let b = binaries();
    let loadgen = Loadgen::new(&b.loadgen, 0);
    for (name, spec) in specs(&b).into_iter().skip(1) {
        let server = RunningServer::start(&spec).unwrap();
        assert_eq!(server.open_connections().unwrap(), 0, "{name}: none yet");
        let idle = measure_idle_rss(&server, &loadgen, 200, 2000.0)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // All 200 normally; a connect timeout on a loaded CI box may lose a few.
        assert!(
            idle.open > 0 && idle.open <= 200,
            "{name}: open connections counted: {idle:?}"
        );
        assert!(idle.rss_after >= idle.rss_before, "{name}: {idle:?}");
        assert!(idle.bytes_per_connection >= 0.0);
        // loadgen is gone: the count falls back to zero.
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.open_connections().unwrap() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(server.open_connections().unwrap(), 0, "{name}: all closed");
        server.stop().unwrap();
    }
}

#[test]
fn a_server_that_never_announces_is_an_error_not_a_hang() {
    let spec = ServerSpec {
        binary: "/bin/sh".into(),
        args: vec!["-c".into(), "echo starting >&2; exit 3".into()],
        cpu: 0,
        path: "/ws".into(),
    };
    let err = RunningServer::start(&spec).unwrap_err().to_string();
    assert!(err.contains("did not print"), "{err}");
    assert!(err.contains("starting"), "stderr is shown: {err}");
}
