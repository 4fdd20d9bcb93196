//! A TCP-level switch in front of DynamoDB Local, to take the store away in the middle of a load
//! without touching the emulator the other tests share: `Up` forwards bytes both ways; `Refuse`
//! closes every connection (new ones as soon as they are accepted, open ones at once); `Hang`
//! accepts and holds connections without a byte of answer (open ones stop mid-exchange), as a
//! store that stopped answering does. Switching back to `Up` drops the held connections.

use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    Refuse,
    Hang,
}

pub struct Outage {
    pub endpoint: String,
    mode: watch::Sender<Mode>,
}

impl Outage {
    /// Starts the switch on 127.0.0.1 in front of `upstream` (`http://host:port`), up.
    pub async fn start(upstream: &str) -> Outage {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (mode, watching) = watch::channel(Mode::Up);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let (target, mut watching) = (target.clone(), watching.clone());
                tokio::spawn(async move {
                    let now = *watching.borrow_and_update();
                    match now {
                        Mode::Refuse => drop(inbound),
                        Mode::Hang => {
                            // Hold it, silent, until the mode changes.
                            let _ = watching.changed().await;
                            drop(inbound);
                        }
                        Mode::Up => {
                            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                                return;
                            };
                            let mut inbound = inbound;
                            tokio::select! {
                                _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = async {
                                    while watching.changed().await.is_ok() {
                                        if *watching.borrow() != Mode::Up {
                                            break;
                                        }
                                    }
                                } => {
                                    if *watching.borrow() == Mode::Hang {
                                        let _ = watching.changed().await;
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        Outage { endpoint, mode }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Sets `mode` for `period`, then brings the store back.
    pub async fn for_a_while(&self, mode: Mode, period: Duration) {
        self.set(mode);
        tokio::time::sleep(period).await;
        self.set(Mode::Up);
    }
}
