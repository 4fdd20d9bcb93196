//! The SDK's HTTP client: HTTP/1.1 only, TLS by rustls with the `ring` crypto provider.
//!
//! The SDK's default client (`aws-smithy-http-client`) speaks HTTP/1.1 and HTTP/2 and takes its
//! crypto from aws-lc-rs. DynamoDB is called over HTTP/1.1, so `h2` and `aws-lc-sys` are dead
//! weight in every function binary: leaving them out saves TODO KiB per arm64 binary
//! (docs/PERFORMANCE.md). What is left is the same pooled hyper-util client the SDK builds, with
//! the two time limits the SDK leaves to its connector: connect and read.

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, capture_connection,
};
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The HTTP client to give an SDK config (`http_client`). It loads the system's root
/// certificates now, once per process (Lambda's init phase), not on the first call.
pub fn client() -> SharedHttpClient {
    https();
    SharedHttpClient::new(Http1Client::default())
}

/// A connector's time limits: connect, read.
type Limits = (Option<Duration>, Option<Duration>);

/// One connector, hence one connection pool, per distinct (connect, read) time limits: the SDK
/// asks for a connector on every attempt, always with the same settings for a given client.
#[derive(Debug, Default)]
struct Http1Client {
    connectors: Mutex<HashMap<Limits, SharedHttpConnector>>,
}

impl HttpClient for Http1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let (connect, read) = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry((connect, read))
            .or_insert_with(|| SharedHttpConnector::new(Http1Connector::new(connect, read)))
            .clone()
    }
}

/// A hyper-util pooled client (HTTP/1.1 only), with the read time limit.
#[derive(Debug)]
struct Http1Connector {
    pool: Client<ConnectTimeout<HttpsConnector<TcpConnector>>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Http1Connector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let connector = ConnectTimeout {
            inner: https().clone(),
            limit: connect_timeout,
        };
        let pool = Client::builder(TokioExecutor::new())
            // Without a timer the pool never drops its idle connections (90 s, as the SDK's).
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { pool, read_timeout }
    }
}

impl HttpConnector for Http1Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        // The SDK's connection-poisoning interceptor closes the connection after a transient
        // error through this (and logs an error on each one when no connector set it).
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.pool.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await.map_err(connector_error),
                Some(after) => match tokio::time::timeout(after, response).await {
                    Ok(response) => response.map_err(connector_error),
                    Err(_) => Err(ConnectorError::timeout(BoxError::from(TimedOut {
                        what: "read",
                        after,
                    }))),
                },
            };
            response.and_then(|response| {
                HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|err| ConnectorError::other(err.into(), None))
            })
        })
    }
}

/// The HTTPS-or-plain-HTTP connector (DynamoDB Local is `http://`), built once: the TLS config
/// holds every root certificate of the system store. Its rustls config names `ring` itself, so
/// no process-wide default provider is needed; no ALPN, so servers answer HTTP/1.1.
fn https() -> &'static HttpsConnector<TcpConnector> {
    static HTTPS: OnceLock<HttpsConnector<TcpConnector>> = OnceLock::new();
    HTTPS.get_or_init(|| {
        let mut tcp = TcpConnector::new();
        // The scheme is checked by the TLS layer: `https://` is allowed through to it.
        tcp.enforce_http(false);
        // As the SDK's: a request's small writes are sent at once, not held back (Nagle).
        tcp.set_nodelay(true);
        let ring = rustls::crypto::ring::default_provider;
        let tls = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(ring())
            .unwrap_or_else(|err| {
                // As the SDK's: plain HTTP still works; HTTPS calls fail on the certificate.
                tracing::warn!(%err, "no native root certificates: HTTPS calls will fail");
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring()))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(config)
            });
        tls.https_or_http().enable_http1().wrap_connector(tcp)
    })
}

/// A connection being made.
type Connecting<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

/// A time limit on connecting: DNS, TCP and the TLS handshake, as the SDK's connect timeout.
#[derive(Clone)]
struct ConnectTimeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> tower_service::Service<Uri> for ConnectTimeout<S>
where
    S: tower_service::Service<Uri>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Connecting<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await.map_err(Into::<BoxError>::into),
                Some(after) => match tokio::time::timeout(after, connecting).await {
                    Ok(connected) => connected.map_err(Into::<BoxError>::into),
                    Err(_) => Err(BoxError::from(TimedOut {
                        what: "connect",
                        after,
                    })),
                },
            }
        })
    }
}

/// A connect or read time limit ran out.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {what} timeout occurred after {after:?}")]
struct TimedOut {
    what: &'static str,
    after: Duration,
}

/// Lets the SDK poison (not reuse) the connection a request went out on.
fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata().is_some();
    let captured = captured.clone();
    let poison = move || {
        if let Some(connection) = captured.connection_metadata().as_ref() {
            connection.poison();
        }
    };
    connected.then(|| {
        ConnectionMetadata::builder()
            .proxied(false)
            .poison_fn(poison)
            .build()
    })
}

/// What a failure means to the SDK's retries, as its own client maps it: time limits are
/// timeouts, broken or refused connections are I/O (both retried), the rest is other.
fn connector_error(err: ClientError) -> ConnectorError {
    let connect = err.is_connect();
    let err = BoxError::from(err);
    if find::<TimedOut>(&*err).is_some() {
        return ConnectorError::timeout(err);
    }
    let Some(cause) = find::<hyper::Error>(&*err) else {
        return match connect || find::<std::io::Error>(&*err).is_some() {
            true => ConnectorError::io(err),
            false => ConnectorError::other(err, None),
        };
    };
    if cause.is_timeout() {
        ConnectorError::timeout(err)
    } else if cause.is_user() {
        ConnectorError::user(err)
    } else if cause.is_closed() || cause.is_canceled() || find::<std::io::Error>(cause).is_some() {
        ConnectorError::io(err)
    } else if cause.is_incomplete_message() {
        // A connection closed before the whole answer: worth another attempt.
        ConnectorError::other(err, Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(err, None)
    }
}

/// The first error of type `E` in `err` and its sources.
fn find<'a, E: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}
