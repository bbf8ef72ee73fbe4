//! `--sig-proxy`: signals the CLI receives are sent on to the container.

use hyper::Method;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::{empty_body, Client};

/// The signals forwarded, by the names docker's kill API takes.
const FORWARDED: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGTSTP, "TSTP"),
];

/// Forwards signals to container `id` in the background until exit.
pub fn forward(client: &Client, id: &str) {
    for &(number, name) in FORWARDED {
        let Ok(mut stream) = signal(SignalKind::from_raw(number)) else {
            continue;
        };
        let client = client.clone();
        let path = format!("/containers/{id}/kill");
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let _ = client
                    .request(
                        Method::POST,
                        &path,
                        &[("signal", name.to_string())],
                        &[],
                        empty_body(),
                    )
                    .await;
            }
        });
    }
}
