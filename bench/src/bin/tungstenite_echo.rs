//! The tokio-tungstenite peer: the crate's echo-server shape (accept, split
//! nothing, forward every text and binary message back) on a tokio
//! current-thread runtime, one core, as in the fastwebsockets benchmark's
//! tokio-tungstenite column.
//!
//! ```text
//! cargo build --release -p bench --bin tungstenite_echo
//! taskset -c 1 target/release/tungstenite_echo --listen 127.0.0.1:8080
//! ```

use bench::peer::{self, PeerArgs};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error, Message};

async fn echo(stream: TcpStream) -> Result<(), Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            msg @ (Message::Text(_) | Message::Binary(_)) => ws.send(msg).await?,
            // tungstenite answers pings and close frames itself.
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = PeerArgs::parse_with_about(
        "The tokio-tungstenite peer: the crate's echo-server shape on one tokio current-thread core, as in the fastwebsockets benchmark's tokio-tungstenite column",
    );
    peer::run("tungstenite_echo", &args, |stream| async move {
        if let Err(e) = echo(stream).await {
            match e {
                Error::ConnectionClosed | Error::AlreadyClosed => {}
                e => eprintln!("websocket connection: {e}"),
            }
        }
    })
}
