//! Autobahn TestSuite conformance, driven by the `kosoku` runner against
//! each I/O backend: cases 1 to 10 (301 cases) as the engine starts, and the
//! whole suite (517 cases, 12.x and 13.x being permessage-deflate) with
//! `--permessage-deflate`.
//!
//! `scripts/test-all.sh` installs kosoku into `target/tools/venv`; the
//! `RINGECHO_KOSOKU` variable can point at another copy. The runner's report
//! (index.json, per-case JSON and HTML) and a `summary.txt` land in
//! `target/autobahn/<backend>/` and `target/autobahn/<backend>-deflate/`.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use common::process::KillOnDrop;
use common::server::Server;
use common::{backend_tests, ws, Backend};

/// How many cases kosoku runs with sections 12 and 13 (compression) excluded.
const EXPECTED_CASES: usize = 301;
/// How many cases the whole suite has.
const EXPECTED_CASES_ALL: usize = 517;

/// The longest a whole kosoku run may take.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Verdicts that count as a pass for a case's message exchange. NON-STRICT
/// diverges from a SHOULD only; it passes cases 1-10 but is listed in the
/// summary. The whole suite with compression admits no NON-STRICT.
const PASSING_BEHAVIORS: [&str; 3] = ["OK", "NON-STRICT", "INFORMATIONAL"];
/// Verdicts that count as a pass for a case's closing handshake.
const PASSING_CLOSE_BEHAVIORS: [&str; 2] = ["OK", "INFORMATIONAL"];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
}

/// The kosoku executable: `$RINGECHO_KOSOKU`, else the copy that
/// `scripts/test-all.sh` installs. Missing kosoku fails the test: conformance
/// is never skipped silently.
fn kosoku() -> PathBuf {
    let path = std::env::var_os("RINGECHO_KOSOKU").map_or_else(
        || workspace_root().join("target/tools/venv/bin/kosoku"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the Autobahn runner kosoku is not at {}: run ./scripts/test-all.sh, which installs it \
         (or point RINGECHO_KOSOKU at a kosoku executable)",
        path.display()
    );
    path
}

/// One case's verdicts, from kosoku's index.json.
#[derive(Debug)]
struct CaseResult {
    behavior: String,
    behavior_close: String,
    remote_close_code: Option<u64>,
}

impl CaseResult {
    fn passed(&self, strict: bool) -> bool {
        PASSING_BEHAVIORS.contains(&self.behavior.as_str())
            && !(strict && self.behavior == "NON-STRICT")
            && PASSING_CLOSE_BEHAVIORS.contains(&self.behavior_close.as_str())
    }

    fn is_clean_ok(&self) -> bool {
        self.behavior == "OK" && self.behavior_close == "OK"
    }
}

/// A case id such as `9.1.10`, ordered numerically part by part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CaseId(Vec<u32>);

impl CaseId {
    fn parse(id: &str) -> CaseId {
        CaseId(
            id.split('.')
                .map(|part| {
                    part.parse()
                        .unwrap_or_else(|_| panic!("bad case id {id:?}"))
                })
                .collect(),
        )
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Reads kosoku's index.json: `{agent: {case id: {behavior, behaviorClose,
/// remoteCloseCode, ...}}}`, with exactly one agent (the server under test).
fn read_index(report_dir: &Path, runner_log: &str) -> BTreeMap<CaseId, CaseResult> {
    let index_path = report_dir.join("index.json");
    let index = fs::read(&index_path).unwrap_or_else(|error| {
        panic!(
            "kosoku wrote no {}: {error}; its output:\n{runner_log}",
            index_path.display()
        )
    });
    let index: serde_json::Value = serde_json::from_slice(&index).expect("index.json is JSON");
    let agents = index.as_object().expect("index.json maps agents to cases");
    assert_eq!(
        agents.len(),
        1,
        "expected one agent in index.json: {agents:?}"
    );
    let cases = agents.values().next().and_then(|cases| cases.as_object());
    let text = |case: &serde_json::Value, field: &str| {
        case[field]
            .as_str()
            .unwrap_or_else(|| panic!("case without {field}: {case}"))
            .to_owned()
    };
    cases
        .expect("the agent maps case ids to results")
        .iter()
        .map(|(id, case)| {
            let result = CaseResult {
                behavior: text(case, "behavior"),
                behavior_close: text(case, "behaviorClose"),
                remote_close_code: case["remoteCloseCode"].as_u64(),
            };
            (CaseId::parse(id), result)
        })
        .collect()
}

/// Counts per verdict and every case that was not a clean OK.
fn summarize(
    suite: Suite,
    backend: Backend,
    runner_status: ExitStatus,
    results: &BTreeMap<CaseId, CaseResult>,
) -> String {
    let mut counts: Vec<(&str, usize)> = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED"]
        .into_iter()
        .map(|behavior| (behavior, 0))
        .collect();
    for result in results.values() {
        match counts
            .iter_mut()
            .find(|(behavior, _)| *behavior == result.behavior)
        {
            Some((_, count)) => *count += 1,
            None => counts.push((&result.behavior, 1)),
        }
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(behavior, count)| format!("{behavior} {count}"))
        .collect();
    let mut summary = format!(
        "Autobahn {} against --io {}: {} cases: {} (kosoku {runner_status})\n",
        suite.describe(),
        backend.name(),
        results.len(),
        counts.join(", "),
    );
    for (id, result) in results.iter().filter(|(_, result)| !result.is_clean_ok()) {
        let remote_close_code = result
            .remote_close_code
            .map_or_else(|| "none".to_owned(), |code| code.to_string());
        summary.push_str(&format!(
            "  {id}: {} (close: {}, remote close code {remote_close_code}){}\n",
            result.behavior,
            result.behavior_close,
            if result.passed(suite.strict()) {
                ""
            } else {
                "  <- not a pass"
            },
        ));
    }
    summary
}

/// Which part of the suite a run covers.
#[derive(Debug, Clone, Copy)]
enum Suite {
    /// Cases 1-10, the engine as it starts (compression off).
    WithoutCompression,
    /// All 517 cases, with `--permessage-deflate`.
    All,
}

impl Suite {
    fn describe(self) -> &'static str {
        match self {
            Suite::WithoutCompression => "cases 1-10",
            Suite::All => "cases 1-13 with --permessage-deflate",
        }
    }

    /// NON-STRICT fails the case.
    fn strict(self) -> bool {
        matches!(self, Suite::All)
    }

    fn report_dir(self, backend: Backend) -> PathBuf {
        let name = match self {
            Suite::WithoutCompression => backend.name().to_owned(),
            Suite::All => format!("{}-deflate", backend.name()),
        };
        workspace_root().join("target/autobahn").join(name)
    }

    fn server_args(self) -> &'static [&'static str] {
        match self {
            Suite::WithoutCompression => &[],
            Suite::All => &["--permessage-deflate"],
        }
    }

    fn runner_args(self) -> &'static [&'static str] {
        match self {
            Suite::WithoutCompression => &["-x", "12.*", "-x", "13.*"],
            Suite::All => &[],
        }
    }

    fn expected_cases(self) -> usize {
        match self {
            Suite::WithoutCompression => EXPECTED_CASES,
            Suite::All => EXPECTED_CASES_ALL,
        }
    }
}

async fn passes_autobahn_cases_1_to_10(backend: Backend) {
    run_suite(Suite::WithoutCompression, backend).await;
}

async fn passes_all_of_autobahn_with_permessage_deflate(backend: Backend) {
    run_suite(Suite::All, backend).await;
}

async fn run_suite(suite: Suite, backend: Backend) {
    let kosoku = kosoku();
    let report_dir = suite.report_dir(backend);
    if report_dir.exists() {
        fs::remove_dir_all(&report_dir).expect("remove the previous report");
    }
    fs::create_dir_all(&report_dir).expect("create the report directory");
    let log_path = report_dir.join("kosoku.log");
    let log = File::create(&log_path).expect("create kosoku.log");

    let server = Server::start(backend, suite.server_args()).await;
    let mut runner = KillOnDrop::spawn(
        Command::new(kosoku)
            .args(suite.runner_args())
            .args(["-p", "4", "-o"])
            .arg(&report_dir)
            .arg(ws::echo_url(server.addr()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share kosoku.log"))
            .stderr(log),
    );
    let runner_status = runner
        .wait(RUN_LIMIT)
        .await
        .unwrap_or_else(|| panic!("kosoku still running after {RUN_LIMIT:?}"));
    let runner_log = fs::read_to_string(&log_path).unwrap_or_default();

    let results = read_index(&report_dir, &runner_log);
    let summary = summarize(suite, backend, runner_status, &results);
    fs::write(report_dir.join("summary.txt"), &summary).expect("write summary.txt");
    println!("{summary}");

    assert_eq!(results.len(), suite.expected_cases(), "number of cases run");
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, result)| !result.passed(suite.strict()))
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "Autobahn cases not passed: {failed:?}\n{summary}"
    );
    assert!(
        runner_status.success(),
        "kosoku failed although every case passed:\n{runner_log}"
    );
}

backend_tests!(
    passes_autobahn_cases_1_to_10,
    passes_all_of_autobahn_with_permessage_deflate
);
