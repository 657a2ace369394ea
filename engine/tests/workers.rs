//! Thread per core: connections spread over every worker, and worker `i`
//! runs only on core `i` (modulo the cores available), unless `--no-pin`.

mod common;

use std::fs;
use std::time::Duration;

use common::http::{connections_per_worker, health};
use common::server::Server;
use common::{backend_tests, eventually, ws, Backend};
use tokio::time::Instant;

const WORKERS: usize = 2;
const WORKERS_ARG: &str = "2";

/// The prefix of worker thread names; the worker index follows it.
const WORKER_THREAD_PREFIX: &str = "ringecho-w";

async fn spreads_connections_over_all_workers(backend: Backend) {
    const CONNECTIONS: u64 = 32;
    let server = Server::start(backend, &["--threads", WORKERS_ARG]).await;
    let addr = server.addr();
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        sockets.push(ws::connect(addr).await);
    }

    let counts = eventually("/healthz to count every open WebSocket", || async move {
        let counts = connections_per_worker(&health(addr).await);
        (counts.iter().sum::<u64>() == CONNECTIONS).then_some(counts)
    })
    .await;
    assert_eq!(counts.len(), WORKERS, "workers in /healthz");
    assert!(
        counts.iter().all(|&count| count > 0),
        "a worker got no connections: {counts:?}"
    );
}

async fn pins_each_worker_to_its_own_core(backend: Backend) {
    let server = Server::start(backend, &["--threads", WORKERS_ARG]).await;
    assert!(
        server.startup_line().contains("pinned=true"),
        "startup line: {}",
        server.startup_line()
    );
    let cpus = allowed_cpus(&own_cpu_list());
    let expected: Vec<_> = (0..WORKERS)
        .map(|worker| (worker, cpus[worker % cpus.len()].to_string()))
        .collect();
    assert_eq!(
        settled_worker_cpu_lists(server.pid(), &expected).await,
        expected
    );
}

async fn leaves_workers_unpinned_with_no_pin(backend: Backend) {
    let server = Server::start(backend, &["--threads", WORKERS_ARG, "--no-pin"]).await;
    assert!(
        server.startup_line().contains("pinned=false"),
        "startup line: {}",
        server.startup_line()
    );
    let every_cpu = own_cpu_list();
    let expected: Vec<_> = (0..WORKERS)
        .map(|worker| (worker, every_cpu.clone()))
        .collect();
    assert_eq!(
        settled_worker_cpu_lists(server.pid(), &expected).await,
        expected
    );
}

/// Reads the worker threads' CPU lists until they equal `expected` or two
/// seconds have passed (a worker may pin itself just after the startup line),
/// and returns the last reading.
async fn settled_worker_cpu_lists(pid: u32, expected: &[(usize, String)]) -> Vec<(usize, String)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let actual = worker_cpu_lists(pid);
        if actual == expected || Instant::now() > deadline {
            return actual;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(worker index, Cpus_allowed_list)` for each worker thread of process
/// `pid`, by index.
fn worker_cpu_lists(pid: u32) -> Vec<(usize, String)> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("list the server's threads");
    let mut workers: Vec<_> = tasks
        .filter_map(|task| {
            let task = task.ok()?.path();
            // A thread may end while we look; skip it then.
            let name = fs::read_to_string(task.join("comm")).ok()?;
            let index = name.trim().strip_prefix(WORKER_THREAD_PREFIX)?;
            let index = index
                .parse()
                .unwrap_or_else(|_| panic!("worker thread name {name:?} ends in no index"));
            let status = fs::read_to_string(task.join("status")).ok()?;
            Some((index, cpu_list_in(&status)))
        })
        .collect();
    workers.sort();
    workers
}

/// The `Cpus_allowed_list` of this test process, e.g. `0-1`.
fn own_cpu_list() -> String {
    cpu_list_in(&fs::read_to_string("/proc/self/status").expect("read /proc/self/status"))
}

/// The `Cpus_allowed_list` field of a `/proc/.../status` text.
fn cpu_list_in(status: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("status has Cpus_allowed_list")
        .trim()
        .to_owned()
}

/// The CPUs in a kernel CPU list such as `0-3,6`, in ascending order.
fn allowed_cpus(cpu_list: &str) -> Vec<usize> {
    let number = |text: &str| -> usize {
        text.parse()
            .unwrap_or_else(|_| panic!("bad CPU list {cpu_list:?}"))
    };
    cpu_list
        .split(',')
        .flat_map(|range| match range.split_once('-') {
            Some((first, last)) => number(first)..=number(last),
            None => number(range)..=number(range),
        })
        .collect()
}

backend_tests!(
    spreads_connections_over_all_workers,
    pins_each_worker_to_its_own_core,
    leaves_workers_unpinned_with_no_pin,
);
