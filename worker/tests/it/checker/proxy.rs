//! Loopback proxies in front of the machine's services (Postgres, Postfix, Dovecot), which the
//! checker cuts instead of stopping the services themselves.

use std::sync::Arc;
use std::time::Duration;

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Pass,
    /// Existing connections closed, new ones closed at once.
    Cut,
    /// Existing connections closed, new ones sent this line and closed.
    Reply(&'static str),
}

/// A loopback TCP proxy in front of a machine service the checker must not stop (Postgres,
/// Postfix): the processes under test connect through it, and the checker cuts it.
pub(super) struct Proxy {
    pub(super) port: u16,
    mode: Arc<tokio::sync::watch::Sender<Mode>>,
}

impl Proxy {
    pub(super) async fn start(upstream: u16) -> Proxy {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(tokio::sync::watch::Sender::new(Mode::Pass));
        let modes = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = modes.subscribe();
                let now = *rx.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Mode::Cut => return,
                        Mode::Reply(line) => {
                            let _ = client.write_all(line.as_bytes()).await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            return;
                        }
                        Mode::Pass => {}
                    }
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                        _ = rx.wait_for(|m| *m != Mode::Pass) => {}
                    }
                });
            }
        });
        Proxy { port, mode }
    }

    pub(super) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// `url` with its `host:port` replaced by 127.0.0.1:`port`.
pub(super) fn via_port(url: &str, port: u16) -> String {
    let (scheme_user, rest) = url.rsplit_once('@').expect("a URL with user@host");
    let (_, path) = rest.split_once('/').expect("a URL with a database");
    format!("{scheme_user}@127.0.0.1:{port}/{path}")
}
