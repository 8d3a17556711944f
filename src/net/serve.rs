//! Serving a router on a bound listener (plain HTTP or TLS) until shutdown, with each
//! connection's kernel send buffer bounded: the store daemon's listener and the relay's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The public listener as `[server]` configures it: bound, with its TLS loaded (a certificate
/// problem is a configuration problem: before anything else, exit 64).
pub struct Bound {
    pub listener: TcpListener,
    pub tls: Option<Arc<crate::tls::Tls>>,
    pub addr: SocketAddr,
}

impl Bound {
    pub async fn from_config(server: &crate::config::ServerConfig) -> anyhow::Result<Self> {
        let tls = match &server.tls {
            Some(files) => Some(crate::tls::Tls::load(files)?),
            None => None,
        };
        let listener = TcpListener::bind(server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", server.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        Ok(Self {
            listener,
            tls,
            addr,
        })
    }
}

/// Kernel send buffer of each connection on the PPP / Payment App listener.
const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` (HTTPS with `tls`) until `shutdown`; requests in flight then have
/// `grace` to finish. The store daemon's listener and the relay's.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: &CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    // A bounded kernel send buffer per connection: a Payment App client that stops reading
    // fills it quickly, so its feed falls behind and is closed (1013) instead of piling up
    // megabytes in the kernel. Plenty for PPP answers.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = async {
        match tls {
            None => {
                let listener = listener.tap_io(|tcp| {
                    if let Err(e) =
                        socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER_BYTES)
                    {
                        tracing::debug!(error = %e, "cannot bound a connection's send buffer");
                    }
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                    .await
            }
            Some(tls) => {
                // The same bound, set in the acceptor before the handshake.
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                    axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config()),
                )
                .acceptor(crate::tls::SendBufferAcceptor(SEND_BUFFER_BYTES));
                let handle = axum_server::Handle::<SocketAddr>::new();
                let stop = shutdown.clone();
                let on_stop = handle.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    // Stop accepting; the grace period below bounds the rest.
                    on_stop.graceful_shutdown(None);
                });
                axum_server::Server::<SocketAddr>::from_listener(listener)
                    .acceptor(acceptor)
                    .handle(handle)
                    .serve(app)
                    .await
            }
        }
    };
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("grace period over: exiting with requests still in flight");
        }
    }
    Ok(())
}
