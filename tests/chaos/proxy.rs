//! The built-in TCP proxy: latency added within 1 ms, bytes unchanged, blackhole, reset,
//! and a latency fault driven by the Runner (added, then removed when its duration ends).
//!
//! Round trips are timed by their *fastest* sample. On a busy machine (two cores shared with
//! a compiler) most 40 ms round trips come back 1-80 ms late: the sleeping thread waits for
//! a core. That delay is the scheduler's, not the proxy's, and it only ever adds, while the
//! proxy never delivers a chunk before its due time, so the fastest of many round trips
//! measures what the proxy itself adds, on both sides of the 1 ms bound. (Measured: 20 runs
//! during a full `cargo test` build, 31 samples each: the fastest 40.32-40.53 ms, medians up
//! to 47.6 ms.)

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;
use shakedown::chaos::fault::Env;
use shakedown::chaos::journal::{self, Event, JOURNAL_FILE};
use shakedown::chaos::plan::FaultPlan;
use shakedown::chaos::proxy::{self, Direction, ProxySpec, Toxic};
use shakedown::chaos::runner::Runner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An echo server on a free loopback port.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn start_proxy(upstream: SocketAddr, stop: &CancellationToken) -> proxy::ProxyHandle {
    let spec = ProxySpec {
        name: "dep".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
    };
    proxy::start(&spec, stop).await.unwrap()
}

/// Round trips of a 1-byte ping on one connection (after a warm-up), `n` samples, sorted.
struct Rtts(Vec<Duration>);

impl Rtts {
    fn fastest(&self) -> Duration {
        self.0[0]
    }
    fn median(&self) -> Duration {
        self.0[self.0.len() / 2]
    }
}

async fn rtts(addr: SocketAddr, n: usize) -> Rtts {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [0u8; 1];
    let mut samples = Vec::with_capacity(n);
    for i in 0..=n {
        let t = Instant::now();
        s.write_all(b"x").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if i > 0 {
            samples.push(t.elapsed());
        }
    }
    samples.sort();
    Rtts(samples)
}

/// The fastest of `n` round trips.
async fn rtt(addr: SocketAddr, n: usize) -> Duration {
    rtts(addr, n).await.fastest()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_toxic_adds_the_configured_latency_within_1ms() {
    let upstream = echo().await;
    let stop = CancellationToken::new();
    let p = start_proxy(upstream, &stop).await;
    let direct = rtt(upstream, 31).await;
    let base = rtt(p.local_addr(), 31).await;
    p.add_toxic(
        "lat",
        Toxic::Latency {
            latency: Duration::from_millis(40),
            jitter: Duration::ZERO,
            direction: Direction::Downstream,
        },
    );
    let samples = rtts(p.local_addr(), 31).await;
    let slowed = samples.fastest();
    let added = slowed.saturating_sub(base);
    println!(
        "fastest: direct {direct:?}, proxy {base:?}, proxy+40ms {slowed:?} (median {:?}), added {added:?}",
        samples.median()
    );
    assert!(
        added >= Duration::from_millis(39) && added <= Duration::from_millis(41),
        "added {added:?}, expected 40ms ± 1ms"
    );
    let vs_direct = slowed.saturating_sub(direct);
    assert!(
        vs_direct >= Duration::from_millis(40) && vs_direct <= Duration::from_millis(41),
        "through the proxy {vs_direct:?} slower than direct, expected 40ms within 1ms"
    );
    assert!(p.remove_toxic("lat"));
    let back = rtt(p.local_addr(), 5).await;
    assert!(back < Duration::from_millis(20), "{back:?}");
    stop.cancel();
}

fn hash(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_unchanged_and_in_order_even_with_jitter() {
    let upstream = echo().await;
    let stop = CancellationToken::new();
    let p = start_proxy(upstream, &stop).await;
    p.add_toxic(
        "jitter",
        Toxic::Latency {
            latency: Duration::from_millis(3),
            jitter: Duration::from_millis(3),
            direction: Direction::Both,
        },
    );
    let mut payload = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut payload);
    let s = TcpStream::connect(p.local_addr()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(7919) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(payload.len());
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), payload.len());
    assert_eq!(hash(&back), hash(&payload));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_and_reset_peer() {
    let upstream = echo().await;
    let stop = CancellationToken::new();
    let p = start_proxy(upstream, &stop).await;
    p.add_toxic("bh", Toxic::Blackhole);
    let mut s = TcpStream::connect(p.local_addr()).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf))
            .await
            .is_err(),
        "a blackhole answers nothing"
    );
    p.remove_toxic("bh");
    assert!(rtt(p.local_addr(), 1).await < Duration::from_secs(1));

    p.add_toxic("rst", Toxic::ResetPeer);
    // On loopback the RST may arrive before `connect` completes: that is a reset too.
    let mut s = match TcpStream::connect(p.local_addr()).await {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            stop.cancel();
            return;
        }
    };
    let _ = s.write_all(b"hello").await;
    let got = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .unwrap();
    match got {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => assert_eq!(n, 0, "reset connection returned data"),
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_fault_is_added_and_removed_by_the_runner() {
    let upstream = echo().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let plan = FaultPlan::from_toml(&format!(
        "[[proxy]]\nname = \"dep\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\n\
         [[fault]]\ntype = \"latency\"\nat = \"300ms\"\nduration = \"1s\"\nproxy = \"dep\"\nlatency = \"100ms\"\n"
    ))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("r");
    let run =
        tokio::spawn(Runner::new(plan, Env::new(None), &run_dir).run(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rtt(listen, 3).await < Duration::from_millis(50),
        "no latency before the fault"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        rtt(listen, 1).await >= Duration::from_millis(100),
        "latency during the fault"
    );
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.undone, 1);
    let undone = journal::read(&run_dir.join(JOURNAL_FILE))
        .unwrap()
        .iter()
        .any(|e| matches!(e.event, Event::Undone { .. }));
    assert!(undone);
}
