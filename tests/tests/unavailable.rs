//! With the store unreachable, handlers answer 503 problem+json with Retry-After, quickly.

use std::time::{Duration, Instant};

use e2e::{app_for, member_token, spawn_api};

#[tokio::test]
async fn store_down_means_503_with_retry_after() {
    // A loopback port with nothing listening: every DynamoDB call is refused (a real failure).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = shared::store::local_client(&format!("http://127.0.0.1:{port}"));
    let api = spawn_api(app_for(client, "nowhere")).await;
    let started = Instant::now();
    let reply = api.get("/v1/points", Some(&member_token("u1")), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    reply.assert_problem(503, "unavailable");
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(
        !reply.body.to_string().contains(&port.to_string()),
        "leaks internals: {}",
        reply.body
    );
}
