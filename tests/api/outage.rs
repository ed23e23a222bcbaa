//! A database outage (issue 12): GraphQL answers 503 with `UNAVAILABLE` and `Retry-After`,
//! never 200 with `INTERNAL`, and the server recovers by itself when the database is back.
//!
//! PostgreSQL only: the server reaches its database through a TCP relay the test can cut
//! and restore, so the shared throwaway server the other tests use keeps running.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::helpers::{As, Backend, spawn_with};

/// A relay from a local port to the database. While cut, it drops the connections it carries
/// and closes new ones at once, as a database that went away does.
struct Relay {
    port: u16,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    cut: bool,
    open: Vec<TcpStream>,
}

impl Relay {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(RelayState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut s = shared.lock().unwrap();
                if s.cut {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                s.open.extend([client, server]);
            }
        });
        Self { port, state }
    }

    fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        for c in s.open.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

const QUERY: &str = "{ networks(first: 2) { edges { node { key } } } }";

async fn post(app: &crate::helpers::TestApp, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut r = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": QUERY }));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_recovers() {
    let mut relay = None;
    let app = spawn_with(Backend::Postgres, true, |s| {
        let url = s.database_url().expose_secret().to_owned();
        // postgres://user@127.0.0.1:PORT/db: the relay stands in for the host and port.
        let (scheme_user, rest) = url.split_once('@').unwrap();
        let (target, db) = rest.split_once('/').unwrap();
        let r = Relay::start(target.to_owned());
        s.database_url = Some(SecretString::from(format!(
            "{scheme_user}@127.0.0.1:{}/{db}",
            r.port
        )));
        relay = Some(r);
    })
    .await;
    let relay = relay.unwrap();
    let token = app.token(As::Admin("sandwell"), "").await;
    let (status, _, body) = post(&app, None).await;
    assert_eq!(status, 200, "{body}");

    relay.cut();
    for token in [None, Some(token.as_str())] {
        let (status, retry, body) = post(&app, token).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry.as_deref(), Some("5"), "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
            "{body}"
        );
        assert_eq!(
            body["errors"][0]["message"], "the database is unavailable; try again in 5 seconds",
            "the same words, whether the token or the query met the outage"
        );
        assert!(
            !body.to_string().contains("INTERNAL"),
            "an outage is not a fault: {body}"
        );
    }
    assert_eq!(app.get("/readyz").await.status().as_u16(), 503);

    // Back without a restart: the pool reconnects on its own.
    relay.restore();
    let mut last = (0, None, Value::Null);
    for _ in 0..50 {
        last = post(&app, Some(&token)).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 200, "{}", last.2);
    assert_eq!(
        last.2["data"]["networks"]["edges"].as_array().map(Vec::len),
        Some(2),
        "{}",
        last.2
    );
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
}
