//! The sample page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `./scripts/test-all.sh`) driven over the Chrome
//! DevTools Protocol with chromiumoxide. It connects, sends, sees the echo
//! in the Communication Log, watches the live statistics panel count the
//! connection and the messages, closes with 1000, and saves screenshots to
//! `target/artifacts/`; then the same with `--permessage-deflate`, where the
//! page shows the compression Chromium and the engine agreed on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use common::server::Server;
use common::Backend;
use futures_util::StreamExt;

/// Longest wait for the page to reach a state (Chromium's first start on a
/// busy 2-core machine can take a few seconds).
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The message typed into the page.
const MESSAGE: &str = "hello from headless chromium";

/// The Chromium binary: `$RINGECHO_CHROMIUM`, or `chromium` on `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGECHO_CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium not found: set RINGECHO_CHROMIUM or install Debian's `chromium` \
                 (./scripts/test-all.sh installs it)"
            )
        })
}

/// Where test artifacts go: `target/artifacts/`.
fn artifacts_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target dir");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

/// Evaluates `expression` until it yields `true`, failing with `what` and
/// the page's visible state after [`PAGE_TIMEOUT`].
async fn wait_until(page: &Page, what: &str, expression: &str) {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let done = page
            .evaluate(expression)
            .await
            .ok()
            .and_then(|result| result.into_value::<bool>().ok())
            .unwrap_or(false);
        if done {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "the page never showed {what} ({expression}); page text:\n{}",
                text_of(page, "document.body.innerText").await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The string value of a JavaScript expression.
async fn text_of(page: &Page, expression: &str) -> String {
    page.evaluate(expression)
        .await
        .ok()
        .and_then(|result| result.into_value::<String>().ok())
        .unwrap_or_else(|| format!("<{expression} failed>"))
}

async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let path = artifacts_dir().join(name);
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
        .await
        .unwrap_or_else(|error| panic!("screenshot {}: {error}", path.display()));
    println!("screenshot: {}", path.display());
    path
}

/// What the page must show in its compression line for a server started
/// without and with `--permessage-deflate`.
const NO_COMPRESSION: &str = "Compression: none (the server did not take permessage-deflate)";
/// Chromium offers `permessage-deflate; client_max_window_bits`; the engine
/// asks for no context takeover either way.
const DEFLATE: &str = "Compression: permessage-deflate; server_no_context_takeover; \
                       client_no_context_takeover; client_max_window_bits=15";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_page_echoes_and_shows_live_statistics() {
    let profile = tempfile::tempdir().expect("a fresh Chromium profile dir");
    let config = BrowserConfig::builder()
        .chrome_executable(chromium())
        .no_sandbox()
        .arg("--disable-gpu")
        .arg("--disable-background-networking")
        .user_data_dir(profile.path())
        .window_size(1000, 1100)
        .viewport(None)
        .launch_timeout(PAGE_TIMEOUT)
        .build()
        .expect("browser config");
    let (mut browser, mut handler) = Browser::launch(config)
        .await
        .unwrap_or_else(|error| panic!("cannot start Chromium: {error}"));
    // The handler drives the DevTools connection; it ends with the browser.
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let plain = Server::start(Backend::Uring, &["--threads", "2"]).await;
    let mut shots = walk_through(&browser, &plain, NO_COMPRESSION, "page").await;
    let deflating =
        Server::start(Backend::Uring, &["--threads", "2", "--permessage-deflate"]).await;
    shots.extend(walk_through(&browser, &deflating, DEFLATE, "page-deflate").await);

    for shot in shots {
        let bytes = std::fs::read(&shot).expect("read the screenshot");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            shot.display()
        );
    }
    browser.close().await.expect("close Chromium");
    browser.wait().await.expect("Chromium exits");
    driver.abort();
}

/// Opens the sample page of `server`, connects (the page must show
/// `compression`), sends, sees the echo and the statistics, and closes;
/// returns the screenshots, named after `shot_name`.
async fn walk_through(
    browser: &Browser,
    server: &Server,
    compression: &str,
    shot_name: &str,
) -> Vec<PathBuf> {
    let page = browser
        .new_page(format!("http://{}/", server.addr()))
        .await
        .expect("open the sample page");
    let id = |element: &str| format!("document.getElementById('{element}').textContent");

    // The panel fills from /stats before anything is connected.
    wait_until(
        &page,
        "the io backend in the statistics panel",
        &format!("{}.startsWith('uring (2 workers)')", id("statsIo")),
    )
    .await;
    assert_eq!(
        text_of(&page, &id("statsReceiveBuffers")).await,
        "512 x 65536 B per worker"
    );
    assert_eq!(text_of(&page, &id("statsConnections")).await, "0");

    page.find_element("#connectButton")
        .await
        .expect("Connect button")
        .click()
        .await
        .expect("click Connect");
    wait_until(
        &page,
        "the open state",
        &format!("{} === 'Open'", id("stateLabel")),
    )
    .await;
    assert_eq!(text_of(&page, &id("compressionLabel")).await, compression);

    page.find_element("#sendMessage")
        .await
        .expect("message box")
        .click()
        .await
        .expect("focus the message box")
        .type_str(MESSAGE)
        .await
        .expect("type the message");
    page.find_element("#sendButton")
        .await
        .expect("Send button")
        .click()
        .await
        .expect("click Send");
    let log_has = |from: &str, data: &str| {
        format!(
            "Array.from(document.querySelectorAll('#commsLog tbody tr')).some(tr => \
               tr.cells[0].textContent === '{from}' && tr.cells[2].textContent === '{data}')"
        )
    };
    wait_until(
        &page,
        "the echo in the Communication Log",
        &log_has("Server", MESSAGE),
    )
    .await;

    // Built without the `metrics` feature, message counters stay at zero.
    // Bytes are counted on the wire: compressed, Chromium's payload is not
    // the message's length, but the echo is as long as what came in.
    let counted = usize::from(cfg!(feature = "metrics"));
    let bytes = if compression == NO_COMPRESSION {
        format!("'{}'", MESSAGE.len() * counted)
    } else {
        id("statsBytesIn")
    };
    wait_until(
        &page,
        "the connection and the message in the statistics panel",
        &format!(
            "{} === '1' && {} === '{messages}' && {} === '{messages}' && {} === {bytes} \
             && ({counted} === 0 || {} !== '0')",
            id("statsConnections"),
            id("statsMessagesIn"),
            id("statsMessagesOut"),
            id("statsBytesOut"),
            id("statsBytesIn"),
            messages = counted,
        ),
    )
    .await;
    let open_shot = screenshot(&page, &format!("{shot_name}.png")).await;

    page.find_element("#closeButton")
        .await
        .expect("Close Socket button")
        .click()
        .await
        .expect("click Close Socket");
    wait_until(
        &page,
        "closed with code 1000",
        &format!("{}.startsWith('Closed. Code: 1000')", id("stateLabel")),
    )
    .await;
    wait_until(
        &page,
        "the close in the Communication Log",
        &log_has(
            "Server",
            "Connection closed. Code: 1000. Reason: Closing from client",
        ),
    )
    .await;
    wait_until(
        &page,
        "the closed connection in the statistics panel",
        &format!("{} === '0'", id("statsConnections")),
    )
    .await;
    let closed_shot = screenshot(&page, &format!("{shot_name}-closed.png")).await;
    page.close().await.expect("close the page");
    vec![open_shot, closed_shot]
}
