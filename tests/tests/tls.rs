//! The store's own HTTP client (shared/src/store/http1.rs) speaks HTTPS as it will to DynamoDB:
//! a TLS endpoint with a certificate made for this test, trusted through `SSL_CERT_FILE` (where
//! the native root store looks first), forwards to DynamoDB Local; the ledger and the audit run
//! through it. The endpoint also checks that no HTTP/2 was offered (no ALPN).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::TestEnv;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Starts a TLS endpoint for `localhost` that forwards to `upstream`; answers its port and the
/// count of handshakes it completed.
async fn tls_endpoint(
    upstream: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (u16, Arc<AtomicUsize>) {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let count = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream, count) = (acceptor.clone(), upstream.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                assert_eq!(session.alpn_protocol(), None, "the client offered ALPN (HTTP/2?)");
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, handshakes)
}

#[tokio::test]
async fn the_store_speaks_https_with_its_own_client() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    // SAFETY: set before any client exists (the root store is read once, by the first client), and
    // this test binary has no other test running alongside.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pem) };
    let upstream = e2e::endpoint().trim_start_matches("http://").to_owned();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let (port, handshakes) = tls_endpoint(upstream, cert.cert.der().clone(), key).await;

    let env = TestEnv::with_endpoint(&format!("https://localhost:{port}")).await;
    env.seed_points("tls-member", 40).await;
    let balance = env
        .app
        .store
        .account(&e2e::user("tls-member"), e2e::fixed_now())
        .await
        .expect("balance over TLS");
    assert_eq!(balance.balance, 40);
    env.assert_audit_clean().await;
    assert!(
        handshakes.load(Ordering::SeqCst) >= 1,
        "no TLS handshake reached the endpoint"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
