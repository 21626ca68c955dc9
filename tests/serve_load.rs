//! A bounded load test of `serve` on loopback: 8 clients × 200 requests
//! (predictions of random sizes, page requests, bad requests) end with no
//! errors and no growth in memory. Alone in its process, so that the
//! process's memory is the server's and this test's.

mod support;

use std::time::Instant;

use pixel_transformer_image::ImageDomain;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use support::{http, mnist_request, MNIST};

/// The process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `clients` threads each send `requests` mixed requests (most of them
/// predictions of random size, some page requests, some bad); returns the
/// count of each status.
fn load(addr: &str, clients: usize, requests: usize, seed: u64) -> Vec<(u16, usize)> {
    let base: Vec<Value> = (0..4).map(|s| mnist_request(s, 64, None)).collect();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, base) = (addr.to_string(), base.clone());
            std::thread::spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 100 + c as u64);
                let mut connection = http::Connection::open(&addr).unwrap();
                let mut statuses = Vec::new();
                for i in 0..requests {
                    let answer = match i % 10 {
                        7 => connection.send("GET", "/info", None),
                        8 => connection.send("POST", "/predict", Some(b"{\"queries\": 3}")),
                        9 => http::get(&addr, &format!("/signal?seed={i}")),
                        _ => {
                            let mut request = base[rng.gen_range(0..base.len())].clone();
                            let observed = rng.gen_range(0..=64);
                            let queries = rng.gen_range(1..=200);
                            request["positions"]
                                .as_array_mut()
                                .unwrap()
                                .truncate(observed);
                            request["values"].as_array_mut().unwrap().truncate(observed);
                            request["queries"].as_array_mut().unwrap().truncate(queries);
                            connection.send(
                                "POST",
                                "/predict",
                                Some(request.to_string().as_bytes()),
                            )
                        }
                    };
                    let answer = answer.unwrap_or_else(|e| panic!("client {c}, request {i}: {e}"));
                    let expected = if i % 10 == 8 { 400 } else { 200 };
                    assert_eq!(
                        answer.status,
                        expected,
                        "client {c}, request {i}: {}",
                        answer.text()
                    );
                    statuses.push(answer.status);
                }
                statuses
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for t in threads {
        for status in t.join().expect("a client failed") {
            *counts.entry(status).or_insert(0) += 1;
        }
    }
    counts.into_iter().collect()
}

#[test]
fn a_bounded_load_test_ends_with_no_errors_and_no_growth_in_memory() {
    // As the command line does: freed memory stays in one heap, for reuse.
    pixel_transformer::backend::keep_freed_memory();
    let server = support::serve_pretrained::<2, 1, ImageDomain<1>>(MNIST);
    let addr = server.addr();
    load(&addr, 8, 25, 0); // warm-up: buffers and caches reach their size
    let before = resident_bytes();
    let started = Instant::now();
    let counts = load(&addr, 8, 200, 1);
    let after = resident_bytes();
    let growth = after as f64 / (1 << 20) as f64 - before as f64 / (1 << 20) as f64;
    eprintln!(
        "load test: 8 clients × 200 requests in {:.1} s, statuses {counts:?}, resident memory \
         {:.1} MiB → {:.1} MiB",
        started.elapsed().as_secs_f32(),
        before as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64
    );
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), 1600);
    assert!(growth < 24.0, "resident memory grew by {growth:.1} MiB");
    server.stop().unwrap();
}
