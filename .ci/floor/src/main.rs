//! `floor server`: 127.0.0.1:3499, one thread per connection, each reads and writes back.
//! `floor client N S`: N connections, a 644-byte frame on each every 20 ms for S seconds,
//! phases spread evenly, paced and measured by one busy-polling mio loop as the project's
//! generator is; prints the round trips. `floor client N S RAMP`: connection i starts
//! streaming i/RAMP s after the first and streams for S s, as the generator's calls do.
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

const FRAME: usize = 644;
const ADDR: &str = "127.0.0.1:3499";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => server(),
        Some("client") => client(
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args.get(4).map(|r| r.parse().unwrap()),
        ),
        _ => eprintln!("usage: floor server | floor client CONNECTIONS SECONDS [RAMP]"),
    }
}

fn server() {
    let listener = std::net::TcpListener::bind(ADDR).unwrap();
    for stream in listener.incoming() {
        let mut s = stream.unwrap();
        s.set_nodelay(true).unwrap();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            })
            .unwrap();
    }
}

fn client(n: usize, secs: u64, ramp: Option<f64>) {
    use mio::{net::TcpStream, Events, Interest, Poll, Token};
    let mut poll = Poll::new().unwrap();
    let mut conns: Vec<(TcpStream, VecDeque<Instant>, usize)> = (0..n)
        .map(|i| {
            let s = std::net::TcpStream::connect(ADDR).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            let mut s = TcpStream::from_std(s);
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE)
                .unwrap();
            (s, VecDeque::new(), 0)
        })
        .collect();
    let period = Duration::from_millis(20);
    let frames = secs * 50;
    let t0 = Instant::now() + Duration::from_millis(100);
    // With a ramp, connection i's frames start at t0 + starts[i].
    let starts: Vec<Duration> = (0..n)
        .map(|i| ramp.map_or(Duration::ZERO, |r| Duration::from_secs_f64(i as f64 / r)))
        .collect();
    let end = t0 + starts[n - 1] + period * frames as u32 + Duration::from_secs(1);
    let (mut next, mut cursor, mut late, mut sent) = (vec![0u64; n], 0usize, 0u64, 0u64);
    let mut rtts: Vec<u32> = Vec::with_capacity(n * frames as usize);
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 8192];
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        let now = Instant::now();
        for event in events.iter() {
            let (socket, inflight, partial) = &mut conns[event.token().0];
            loop {
                match socket.read(&mut buf) {
                    Ok(m @ 1..) => {
                        *partial += m;
                        while *partial >= FRAME {
                            *partial -= FRAME;
                            if let Some(at) = inflight.pop_front() {
                                rtts.push(now.duration_since(at).as_micros() as u32);
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    _ => break,
                }
            }
        }
        if ramp.is_some() {
            // Starts spread over seconds: every connection is looked at each turn.
            for i in 0..n {
                let due = t0 + starts[i] + period * next[i] as u32;
                if next[i] >= frames || due > now {
                    continue;
                }
                if Instant::now().duration_since(due) >= Duration::from_millis(5) {
                    late += 1;
                }
                conns[i].0.write_all(&[7u8; FRAME]).unwrap();
                conns[i].1.push_back(Instant::now());
                next[i] += 1;
                sent += 1;
            }
            continue;
        }
        // Connection i sends frame k at t0 + 20k ms + i/n of a frame: due in index order.
        for _ in 0..n {
            let i = cursor % n;
            if next[i] >= frames {
                cursor += 1;
                continue;
            }
            let due = t0 + period * next[i] as u32 + period * i as u32 / n as u32;
            if due > now {
                break;
            }
            let at = Instant::now();
            if at.duration_since(due) >= Duration::from_millis(5) {
                late += 1;
            }
            conns[i].0.write_all(&[7u8; FRAME]).unwrap();
            conns[i].1.push_back(at);
            next[i] += 1;
            sent += 1;
            cursor += 1;
        }
    }
    rtts.sort_unstable();
    let p = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "frames: {sent} sent, {} echoed, {late} sent late; round trip ms p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        rtts.len(), p(0.5), p(0.9), p(0.99), p(0.999), p(1.0)
    );
}
