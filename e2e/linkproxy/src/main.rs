//! linkproxy: a tiny TCP proxy that stands for the network link between Marshal's hub and one member
//! cluster of the local federation (see `e2e/README.md`).
//!
//! ```text
//! linkproxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --control FILE
//! ```
//!
//! The link's mode is read from the control file, polled every 100 ms; the mode in force is written back
//! to `FILE.applied` once it applies, so a script can wait for it. The control file holds one line:
//!
//! * `pass` (or `up`, or an empty/missing file): bytes are forwarded as they come;
//! * `blackhole` (or `down`): nothing is forwarded in either direction and nothing is closed or reset.
//!   New connections are accepted by the kernel and then held without dialling the upstream; open
//!   connections stall. When the link comes back, held data and held connections proceed, as they would
//!   after a real partition heals;
//! * `delay MS`: every chunk is forwarded MS milliseconds after it was read, in each direction (so a
//!   round trip gains 2 x MS).
//!
//! Only loopback addresses are accepted, for listening and for the upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(100);
const CHUNK: usize = 64 * 1024;
const QUEUE: usize = 16;

/// The state of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Pass,
    Blackhole,
    Delay(Duration),
}

impl Mode {
    fn parse(text: &str) -> Result<Mode, String> {
        let mut words = text.split_whitespace();
        let mode = match words.next() {
            None | Some("pass") | Some("up") => Mode::Pass,
            Some("blackhole") | Some("down") => Mode::Blackhole,
            Some("delay") => {
                let ms = words
                    .next()
                    .ok_or_else(|| "delay needs milliseconds".to_string())?
                    .parse::<u64>()
                    .map_err(|e| format!("bad delay: {e}"))?;
                if ms == 0 {
                    Mode::Pass
                } else {
                    Mode::Delay(Duration::from_millis(ms))
                }
            }
            Some(other) => return Err(format!("unknown mode {other:?}")),
        };
        match words.next() {
            None => Ok(mode),
            Some(extra) => Err(format!("unexpected {extra:?}")),
        }
    }

    fn render(self) -> String {
        match self {
            Mode::Pass => "pass".to_string(),
            Mode::Blackhole => "blackhole".to_string(),
            Mode::Delay(d) => format!("delay {}", d.as_millis()),
        }
    }

    fn delay(self) -> Duration {
        match self {
            Mode::Delay(d) => d,
            _ => Duration::ZERO,
        }
    }
}

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    control: PathBuf,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut listen, mut upstream, mut control) = (None, None, None);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(loopback(&value)?),
            "--upstream" => upstream = Some(loopback(&value)?),
            "--control" => control = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        control: control.ok_or("--control is required")?,
    })
}

fn loopback(value: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = value.parse().map_err(|e| format!("{value}: not an IP:PORT address: {e}"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("{value}: only loopback addresses are allowed"))
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("linkproxy: {e}");
            eprintln!("usage: linkproxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --control FILE");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linkproxy: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let initial = read_mode(&args.control).unwrap_or(Mode::Pass);
    write_applied(&args.control, initial);
    let (mode_tx, mode_rx) = watch::channel(initial);
    let listener =
        TcpListener::bind(args.listen).await.map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "linkproxy: {} -> {} (control {}, mode {})",
        args.listen,
        args.upstream,
        args.control.display(),
        initial.render()
    );
    tokio::spawn(watch_control(args.control.clone(), mode_tx));
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(serve(client, peer, args.upstream, mode_rx.clone()));
            }
            Err(e) => {
                eprintln!("linkproxy: accept failed: {e}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn read_mode(control: &Path) -> Option<Mode> {
    match std::fs::read_to_string(control) {
        Ok(text) => match Mode::parse(&text) {
            Ok(mode) => Some(mode),
            Err(e) => {
                eprintln!("linkproxy: ignoring control file: {e}");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Mode::Pass),
        Err(e) => {
            eprintln!("linkproxy: cannot read control file: {e}");
            None
        }
    }
}

fn applied_path(control: &Path) -> PathBuf {
    let mut name = control.as_os_str().to_owned();
    name.push(".applied");
    PathBuf::from(name)
}

/// Records the mode in force, atomically (write a temporary file, then rename).
fn write_applied(control: &Path, mode: Mode) {
    let path = applied_path(control);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = std::fs::write(&tmp, format!("{}\n", mode.render())).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        eprintln!("linkproxy: cannot write {}: {e}", path.display());
    }
}

async fn watch_control(control: PathBuf, mode_tx: watch::Sender<Mode>) {
    loop {
        tokio::time::sleep(POLL).await;
        if let Some(mode) = read_mode(&control) {
            if *mode_tx.borrow() != mode {
                eprintln!("linkproxy: mode {}", mode.render());
                mode_tx.send_replace(mode);
                write_applied(&control, mode);
            }
        }
    }
}

/// Waits while the link is blackholed; returns the mode in force afterwards.
async fn wait_link_up(mode_rx: &mut watch::Receiver<Mode>) -> Option<Mode> {
    loop {
        let mode = *mode_rx.borrow_and_update();
        if mode != Mode::Blackhole {
            return Some(mode);
        }
        mode_rx.changed().await.ok()?;
    }
}

async fn serve(client: TcpStream, peer: SocketAddr, upstream: SocketAddr, mut mode_rx: watch::Receiver<Mode>) {
    // A blackholed link answers nothing: hold the connection until the link is back.
    if wait_link_up(&mut mode_rx).await.is_none() {
        return;
    }
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("linkproxy: {peer}: upstream {upstream}: {e}");
            // Reset, as the upstream's kernel would have done ("connection refused").
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(pump(client_read, server_write, mode_rx.clone()), pump(server_read, client_write, mode_rx),);
}

/// Forwards one direction: a reader fills a bounded queue, a writer drains it when the link lets it.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, mode_rx: watch::Receiver<Mode>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::join!(read_side(from, tx, mode_rx.clone()), write_side(to, rx, mode_rx));
}

async fn read_side(mut from: OwnedReadHalf, tx: mpsc::Sender<(Instant, Vec<u8>)>, mode_rx: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let due = Instant::now() + mode_rx.borrow().delay();
        let chunk = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
        if tx.send((due, chunk)).await.is_err() {
            return;
        }
    }
}

async fn write_side(
    mut to: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut mode_rx: watch::Receiver<Mode>,
) {
    while let Some((due, chunk)) = rx.recv().await {
        // Hold the data while the link is down, then honour its delay.
        loop {
            if wait_link_up(&mut mode_rx).await.is_none() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                changed = mode_rx.changed() => {
                    if changed.is_err() { return; }
                    continue;
                }
            }
            if *mode_rx.borrow() != Mode::Blackhole {
                break;
            }
        }
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    // The other side finished sending: pass the half-close on, once the link lets it through.
    if wait_link_up(&mut mode_rx).await.is_some() {
        let _ = to.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(Mode::parse("pass\n").unwrap(), Mode::Pass);
        assert_eq!(Mode::parse("").unwrap(), Mode::Pass);
        assert_eq!(Mode::parse("up").unwrap(), Mode::Pass);
        assert_eq!(Mode::parse("down").unwrap(), Mode::Blackhole);
        assert_eq!(Mode::parse("blackhole").unwrap(), Mode::Blackhole);
        assert_eq!(Mode::parse("delay 250\n").unwrap(), Mode::Delay(Duration::from_millis(250)));
        assert_eq!(Mode::parse("delay 0").unwrap(), Mode::Pass);
        assert!(Mode::parse("delay").is_err());
        assert!(Mode::parse("delay x").is_err());
        assert!(Mode::parse("sideways").is_err());
        assert!(Mode::parse("pass now").is_err());
    }

    #[test]
    fn renders_round_trip() {
        for mode in [Mode::Pass, Mode::Blackhole, Mode::Delay(Duration::from_millis(40))] {
            assert_eq!(Mode::parse(&mode.render()).unwrap(), mode);
        }
    }

    #[test]
    fn only_loopback() {
        assert!(loopback("127.0.0.1:80").is_ok());
        assert!(loopback("[::1]:80").is_ok());
        assert!(loopback("10.0.0.1:80").is_err());
        assert!(loopback("0.0.0.0:80").is_err());
        assert!(loopback("localhost:80").is_err());
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn proxy(upstream: SocketAddr, mode: Mode) -> (SocketAddr, watch::Sender<Mode>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(mode);
        tokio::spawn(async move {
            while let Ok((c, peer)) = listener.accept().await {
                tokio::spawn(serve(c, peer, upstream, rx.clone()));
            }
        });
        (addr, tx)
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn passes_blackholes_and_delays() {
        let echo = echo_server().await;
        let (addr, mode) = proxy(echo, Mode::Pass).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(round_trip(&mut s, b"hello").await, b"hello");

        // Blackhole: an open connection stalls, without being closed.
        mode.send_replace(Mode::Blackhole);
        s.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let stalled = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
        assert!(stalled.is_err(), "data went through a blackholed link");
        // A new connection is accepted but gets nothing back.
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        fresh.write_all(b"new").await.unwrap();
        let mut buf3 = [0u8; 3];
        let stalled = tokio::time::timeout(Duration::from_millis(300), fresh.read_exact(&mut buf3)).await;
        assert!(stalled.is_err());

        // Back up: held data and held connections proceed.
        mode.send_replace(Mode::Pass);
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"held");
        fresh.read_exact(&mut buf3).await.unwrap();
        assert_eq!(&buf3, b"new");

        // Delay: each direction waits.
        mode.send_replace(Mode::Delay(Duration::from_millis(100)));
        let start = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, b"slow").await, b"slow");
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn upstream_down_resets() {
        // Find a port with nothing listening on it.
        let unused = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let (addr, _mode) = proxy(unused, Mode::Pass).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)));
    }
}
