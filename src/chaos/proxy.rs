//! A built-in TCP proxy with toxics, for `latency`, `blackhole`, `reset-peer` and `bandwidth`
//! faults: the user points a dependency through `listen`, the proxy forwards to `upstream`.
//!
//! Toxics are added and removed at runtime ([`ProxyHandle::add_toxic`],
//! [`ProxyHandle::remove_toxic`]) and act on new and open connections alike. Latency delays
//! each chunk by `latency ± jitter` on the chosen direction(s) without ever dropping or
//! reordering data (each chunk is due no earlier than the one before it); removing it lets
//! queued chunks go out at their due time. A blackhole accepts and discards; reset-peer
//! closes connections with a TCP RST; bandwidth paces writes to a byte rate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A `[[proxy]]` table: a named TCP proxy the run starts before its faults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// Name the faults refer to (`proxy = "db"`).
    pub name: String,
    /// Address to listen on (`127.0.0.1:15432`; port 0 picks one).
    pub listen: SocketAddr,
    /// Address to forward to.
    pub upstream: SocketAddr,
}

/// Which way data flows through the proxy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Upstream to client (answers). The default, as in toxiproxy.
    #[default]
    Downstream,
    /// Client to upstream (requests).
    Upstream,
    /// Both.
    Both,
}

impl Direction {
    fn covers(self, flow: Direction) -> bool {
        self == Direction::Both || self == flow
    }
}

/// One toxic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "toxic", rename_all = "kebab-case")]
pub enum Toxic {
    /// Delay every chunk by `latency ± jitter` (uniform).
    Latency {
        /// Mean added delay.
        #[serde(with = "crate::units::serde_duration")]
        #[schemars(with = "String")]
        latency: Duration,
        /// Maximum deviation from the mean.
        #[serde(default, with = "crate::units::serde_duration")]
        #[schemars(with = "String")]
        jitter: Duration,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
    /// Accept and discard everything (both ways).
    Blackhole,
    /// Close connections with a TCP RST.
    ResetPeer,
    /// Limit throughput to `bytes_per_second` (per connection and direction).
    Bandwidth {
        /// The rate.
        bytes_per_second: u64,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
}

type Toxics = Arc<RwLock<BTreeMap<String, Toxic>>>;

/// A running proxy.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    name: String,
    local_addr: SocketAddr,
    upstream: SocketAddr,
    toxics: Toxics,
    stop: CancellationToken,
}

impl ProxyHandle {
    /// The proxy's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Where it listens (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    /// Where it forwards.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }
    /// Adds (or replaces) the toxic `id`.
    pub fn add_toxic(&self, id: &str, toxic: Toxic) {
        self.toxics.write().insert(id.to_owned(), toxic);
    }
    /// Removes the toxic `id`; `false` if it was not there.
    pub fn remove_toxic(&self, id: &str) -> bool {
        self.toxics.write().remove(id).is_some()
    }
    /// The active toxics.
    pub fn toxics(&self) -> BTreeMap<String, Toxic> {
        self.toxics.read().clone()
    }
    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Starts a proxy; it runs until `shutdown` is cancelled or [`ProxyHandle::stop`].
pub async fn start(spec: &ProxySpec, shutdown: &CancellationToken) -> std::io::Result<ProxyHandle> {
    let listener = TcpListener::bind(spec.listen).await?;
    let handle = ProxyHandle {
        name: spec.name.clone(),
        local_addr: listener.local_addr()?,
        upstream: spec.upstream,
        toxics: Toxics::default(),
        stop: shutdown.child_token(),
    };
    tokio::spawn(accept_loop(listener, handle.clone()));
    Ok(handle)
}

async fn accept_loop(listener: TcpListener, proxy: ProxyHandle) {
    loop {
        let accepted = tokio::select! {
            _ = proxy.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = client.set_nodelay(true);
        tokio::spawn(connection(client, proxy.clone()));
    }
}

fn has(toxics: &Toxics, f: impl Fn(&Toxic) -> bool) -> bool {
    toxics.read().values().any(f)
}

async fn connection(client: TcpStream, proxy: ProxyHandle) {
    if has(&proxy.toxics, |t| matches!(t, Toxic::ResetPeer)) {
        reset(client);
        return;
    }
    let upstream = if has(&proxy.toxics, |t| matches!(t, Toxic::Blackhole)) {
        None
    } else {
        match TcpStream::connect(proxy.upstream).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Some(s)
            }
            Err(_) => return,
        }
    };
    let Some(upstream) = upstream else {
        discard(client, &proxy.stop).await;
        return;
    };
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let conn = proxy.stop.child_token();
    let up = tokio::spawn(pump(
        cr,
        uw,
        Direction::Upstream,
        proxy.toxics.clone(),
        conn.clone(),
    ));
    let down = tokio::spawn(pump(
        ur,
        cw,
        Direction::Downstream,
        proxy.toxics.clone(),
        conn,
    ));
    let _ = up.await;
    let _ = down.await;
}

/// Reads and discards until the peer closes or the proxy stops.
async fn discard(mut stream: TcpStream, stop: &CancellationToken) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            n = stream.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}

/// Closes with RST (SO_LINGER 0).
fn reset(stream: TcpStream) {
    linger_zero(&stream);
    drop(stream);
}

/// Makes the socket's close send an RST.
fn linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd owned by `stream`, and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

enum Chunk {
    Data { due: Instant, bytes: Vec<u8> },
    Reset,
}

/// Copies one direction through the toxics; returns when the source closes.
async fn pump(
    mut src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    flow: Direction,
    toxics: Toxics,
    stop: CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<Chunk>(256);
    let writer = tokio::spawn(write_loop(dst, rx, flow, toxics.clone(), stop.clone()));
    let mut buf = vec![0u8; 32 * 1024];
    let mut last_due = Instant::now();
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            n = src.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let (reset_now, blackhole, delay) = {
            let t = toxics.read();
            let reset_now = t.values().any(|x| matches!(x, Toxic::ResetPeer));
            let blackhole = t.values().any(|x| matches!(x, Toxic::Blackhole));
            let delay: Duration = t
                .values()
                .filter_map(|x| match x {
                    Toxic::Latency {
                        latency,
                        jitter,
                        direction,
                    } if direction.covers(flow) => Some(jittered(*latency, *jitter)),
                    _ => None,
                })
                .sum();
            (reset_now, blackhole, delay)
        };
        if reset_now {
            linger_zero(src.as_ref());
            let _ = tx.send(Chunk::Reset).await;
            stop.cancel();
            break;
        }
        if blackhole {
            continue;
        }
        // Keep ordering: never due before the previous chunk.
        let due = (Instant::now() + delay).max(last_due);
        last_due = due;
        if tx
            .send(Chunk::Data {
                due,
                bytes: buf[..n].to_vec(),
            })
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn jittered(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = jitter.as_secs_f64();
    let offset = rand::rng().random_range(-j..=j);
    Duration::from_secs_f64((latency.as_secs_f64() + offset).max(0.0))
}

/// Writes chunks at their due time (all queued data is written before closing).
async fn write_loop(
    mut dst: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Chunk>,
    flow: Direction,
    toxics: Toxics,
    stop: CancellationToken,
) {
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Chunk::Reset => {
                linger_zero(dst.as_ref());
                return;
            }
            Chunk::Data { due, bytes } => {
                sleep_precisely_until(due).await;
                let rate = toxics.read().values().find_map(|t| match t {
                    Toxic::Bandwidth {
                        bytes_per_second,
                        direction,
                    } if direction.covers(flow) => Some(*bytes_per_second),
                    _ => None,
                });
                if dst.write_all(&bytes).await.is_err() {
                    stop.cancel();
                    return;
                }
                if let Some(rate) = rate.filter(|r| *r > 0) {
                    tokio::time::sleep(Duration::from_secs_f64(bytes.len() as f64 / rate as f64))
                        .await;
                }
            }
        }
    }
    let _ = dst.shutdown().await;
}

/// Waits until `due` with sub-millisecond precision. tokio's timer wheel rounds up to the
/// next 1 ms tick (even for an expired deadline), so it is used only for the bulk of the
/// wait; the last 2 ms are slept on a blocking thread.
async fn sleep_precisely_until(due: Instant) {
    const SLACK: Duration = Duration::from_millis(2);
    if let Some(coarse) = due.checked_sub(SLACK)
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = due.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// The run's proxies, by name.
#[derive(Debug, Clone, Default)]
pub struct ProxySet {
    proxies: Arc<Mutex<BTreeMap<String, ProxyHandle>>>,
}

impl ProxySet {
    /// Adds a running proxy.
    pub fn insert(&self, handle: ProxyHandle) {
        self.proxies.lock().insert(handle.name().to_owned(), handle);
    }
    /// The proxy named `name`.
    pub fn get(&self, name: &str) -> Option<ProxyHandle> {
        self.proxies.lock().get(name).cloned()
    }
    /// Every name.
    pub fn names(&self) -> Vec<String> {
        self.proxies.lock().keys().cloned().collect()
    }
    /// Stops every proxy.
    pub fn stop_all(&self) {
        for p in self.proxies.lock().values() {
            p.stop();
        }
    }
}
