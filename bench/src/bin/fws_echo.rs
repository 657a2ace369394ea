//! The fastwebsockets peer: the upstream echo example (hyper upgrade,
//! `FragmentCollector`, `unconstrained` echo task) on a tokio current-thread
//! runtime, one core, as in the fastwebsockets benchmark.
//!
//! ```text
//! cargo build --release -p bench --bin fws_echo
//! taskset -c 1 target/release/fws_echo --listen 127.0.0.1:8080
//! ```

use bench::peer::{self, PeerArgs};
use fastwebsockets::{upgrade, Frame, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fastwebsockets::FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                // Never echo the client's mask: build an unmasked frame.
                ws.write_frame(Frame::new(true, frame.opcode, None, frame.payload))
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        if let Err(e) = tokio::task::unconstrained(handle_client(fut)).await {
            eprintln!("websocket connection: {e}");
        }
    });
    Ok(response)
}

fn main() -> std::process::ExitCode {
    let args = PeerArgs::parse_with_about(
        "The fastwebsockets peer: the upstream echo example (hyper upgrade, FragmentCollector) on one tokio current-thread core, as in the fastwebsockets benchmark",
    );
    peer::run("fws_echo", &args, |stream| async move {
        let io = hyper_util::rt::TokioIo::new(stream);
        let conn = http1::Builder::new()
            .serve_connection(io, service_fn(server_upgrade))
            .with_upgrades();
        if let Err(e) = conn.await {
            eprintln!("http connection: {e:?}");
        }
    })
}
