//! `serve` over HTTP: `/predict` answers exactly as the `predict` command,
//! errors are 400 with the same messages, the page's endpoints, and clients
//! that misbehave (bad JSON, huge bodies, too many queries, slow, dropped or
//! not reading) neither crash nor stall the server. (The load test is in
//! `serve_load.rs`, a process of its own, so that it measures memory alone.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pixel_transformer_image::ImageDomain;
use pixel_transformer_polynomial::PolynomialDomain;
use serde_json::{json, Value};
use support::{http, mnist_request, MNIST};

/// What the `predict` command answers for `lines` (or its error).
fn predict_command(lines: &[String], extra: &[&str]) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut args = vec![
        "image".to_string(),
        "predict".into(),
        "--checkpoint".into(),
        "pretrained".into(),
        "--input".into(),
        input.display().to_string(),
        "--output".into(),
        output.display().to_string(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    pixel_transformer::cli::run_from::<2, 1, ImageDomain<1>, _, _>(args)
        .map_err(|e| format!("{e:#}"))?;
    let text = std::fs::read_to_string(&output).unwrap();
    Ok(text.lines().map(str::to_string).collect())
}

#[test]
fn predict_over_http_answers_exactly_as_the_predict_command() {
    let server = support::serve_pretrained::<2, 1, ImageDomain<1>>(MNIST);
    let mut with_extras = mnist_request(3, 8, Some(20));
    with_extras["mode"] = json!(true);
    with_extras["components"] = json!(true);
    with_extras["truth"] = json!(vec![[0.5f32]; 20]);
    with_extras["samples"] = json!(2);
    with_extras["seed"] = json!(5);
    let mut hybrid = mnist_request(4, 40, Some(30));
    hybrid["samples"] = json!(2);
    hybrid["autoregressive"] = json!(5);
    hybrid["temperature"] = json!(0.8);
    let requests: Vec<String> = [mnist_request(1, 64, None), with_extras, hybrid]
        .iter()
        .map(Value::to_string)
        .collect();
    let expected = predict_command(&requests, &[]).unwrap();
    assert_eq!(expected.len(), requests.len());
    for (request, line) in requests.iter().zip(&expected) {
        let answer = http::post(&server.addr(), "/predict", request).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        // The same bytes: same fields, same numbers, same order.
        assert_eq!(&answer.text(), line);
    }
    let hybrid: Value = serde_json::from_str(&expected[2]).unwrap();
    assert_eq!(hybrid["samples"].as_array().unwrap().len(), 2);

    // Where `predict` stops with an error, the server answers 400 with the
    // same message, and goes on serving.
    let bad = [
        "not json",
        r#"{"queries": [[0.0]]}"#,
        r#"{"queries": [[0, 0]], "bogus": 1}"#,
        r#"{"positions": [[0, 0]], "values": [], "queries": [[0, 0]]}"#,
        r#"{"queries": [[0, 0]], "samples": 1, "temperature": -1}"#,
        r#"{"queries": []}"#,
        r#"{"queries": [[0, 0], [1, 1]], "samples": 40000}"#,
        r#"{"queries": [[0, 0]]}
{"queries": [[0, 0]]}"#,
    ];
    for request in bad {
        let answer = http::post(&server.addr(), "/predict", request).unwrap();
        assert_eq!(answer.status, 400, "{request}: {}", answer.text());
        let message = answer.json()["error"].as_str().unwrap().to_string();
        let single_line = request.replace('\n', " ");
        let command = predict_command(&[single_line], &[]).unwrap_err();
        if !request.contains('\n') {
            assert!(
                command.contains(&message),
                "{request}: the server says {message:?}, predict says {command:?}"
            );
        }
    }
    // Too many queries or observations: the same limits and messages.
    server.stop().unwrap();
    let server = support::serve_mnist_limited(4, 3);
    for (request, flags) in [
        (mnist_request(1, 2, Some(5)), ["--max-queries", "4"]),
        (mnist_request(1, 4, Some(2)), ["--max-observations", "3"]),
    ] {
        let answer = http::post(&server.addr(), "/predict", &request.to_string()).unwrap();
        assert_eq!(answer.status, 400);
        let message = answer.json()["error"].as_str().unwrap().to_string();
        let command = predict_command(&[request.to_string()], &flags).unwrap_err();
        assert!(command.contains(&message), "{message:?} vs {command:?}");
        assert!(message.contains("more than the"), "{message}");
    }
    server.stop().unwrap();
}

#[test]
fn the_page_and_its_endpoints() {
    let server = support::serve_pretrained::<2, 1, ImageDomain<1>>(MNIST);
    let addr = server.addr();
    let page = http::get(&addr, "/").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"<script src="app.js">"#));
    for asset in ["/app.js", "/style.css"] {
        let answer = http::get(&addr, asset).unwrap();
        assert!(answer.status == 200 && answer.body.len() > 1000, "{asset}");
    }
    let info = http::get(&addr, "/info").unwrap().json();
    assert_eq!(info["domain"], "image");
    assert_eq!(
        (info["positions"].clone(), info["values"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(info["grid"], json!([28, 28]));
    assert_eq!(info["value_range"], json!([0.0, 1.0]));
    assert_eq!(info["exact_posterior"], json!(false));
    // Test signals are seeded: the same seed, the same image on the grid.
    let signal = |query: &str| http::get(&addr, &format!("/signal{query}")).unwrap();
    let (a, b, c) = (signal("?seed=3"), signal("?seed=3"), signal("?seed=4"));
    assert_eq!(a.text(), b.text());
    assert_ne!(a.json()["values"], c.json()["values"]);
    assert_eq!(a.json()["values"].as_array().unwrap().len(), 28 * 28);
    let not_a_seed = signal("?seed=x");
    assert_eq!(not_a_seed.status, 400);
    assert!(not_a_seed.text().contains("whole number"));
    let none = http::post(&addr, "/posterior", r#"{"queries": [[0, 0]]}"#).unwrap();
    assert_eq!(none.status, 404);
    assert!(none.text().contains("no exact posterior"));
    assert_eq!(http::get(&addr, "/nowhere").unwrap().status, 404);
    assert_eq!(http::get(&addr, "/predict").unwrap().status, 405);
    assert_eq!(http::post(&addr, "/info", "{}").unwrap().status, 405);
    server.stop().unwrap();

    // The polynomial domain's exact posterior, as its Bayes module computes it.
    let server =
        support::serve_pretrained::<1, 1, PolynomialDomain>("domains/polynomial/pretrained");
    let info = http::get(&server.addr(), "/info").unwrap().json();
    assert_eq!(info["exact_posterior"], json!(true));
    let body = r#"{"positions": [[-0.5], [0.0], [0.5]], "values": [[1.0], [0.0], [2.0]], "queries": [[0.25], [0.9]]}"#;
    let answer = http::post(&server.addr(), "/posterior", body)
        .unwrap()
        .json();
    let bayes = pixel_transformer_polynomial::bayes::BayesPosterior::fit(
        &[-0.5, 0.0, 0.5],
        &[1.0, 0.0, 2.0],
        0.0,
        pixel_transformer_polynomial::bayes::NOISE_FREE_JITTER,
    )
    .unwrap();
    for (i, x) in [0.25f32, 0.9].into_iter().enumerate() {
        let (mean, var) = bayes.predict(x as f64);
        assert_eq!(answer["mean"][i][0].as_f64().unwrap() as f32, mean as f32);
        assert_eq!(
            answer["std"][i][0].as_f64().unwrap() as f32,
            var.sqrt() as f32
        );
    }
    let bad = http::post(&server.addr(), "/posterior", r#"{"queries": [[0, 0]]}"#).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("expected 1"), "{}", bad.text());
    server.stop().unwrap();
}

/// Answers a quick request within `seconds`, as a check that the server is
/// not stalled.
fn answers_promptly(addr: &str, seconds: f32) {
    let started = Instant::now();
    let answer = http::post(addr, "/predict", r#"{"queries": [[0, 0]]}"#).unwrap();
    assert_eq!(answer.status, 200);
    let took = started.elapsed().as_secs_f32();
    assert!(took < seconds, "a quick request took {took:.2} s");
}

/// Reads what the server sends on `stream` until it closes it, within `seconds`.
fn read_until_closed(stream: &mut TcpStream, seconds: u64) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(seconds)))
        .unwrap();
    let mut out = Vec::new();
    let outcome = stream.read_to_end(&mut out);
    let reset = outcome
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(
        outcome.is_ok() || reset,
        "the server did not close the connection within {seconds} s: {outcome:?}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn misbehaving_clients_neither_crash_nor_stall_the_server() {
    let server = support::serve_mnist_limited(1000, 1000);
    let addr = server.addr();

    // A body larger than the limit, declared: refused before it is sent.
    let mut huge = TcpStream::connect(&addr).unwrap();
    huge.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        .unwrap();
    let reply = read_until_closed(&mut huge, 5);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("larger than the"), "{reply}");
    // … and undeclared (chunked): refused once it passes the limit.
    let mut chunked = TcpStream::connect(&addr).unwrap();
    chunked
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b' '; 1 << 16];
    for _ in 0..64 {
        let head = format!("{:x}\r\n", chunk.len());
        if chunked.write_all(head.as_bytes()).is_err()
            || chunked.write_all(&chunk).is_err()
            || chunked.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let reply = read_until_closed(&mut chunked, 5);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // A client that sends half a request head and stops: others are served
    // meanwhile, and its connection is closed after the header timeout.
    let mut slow_head = TcpStream::connect(&addr).unwrap();
    slow_head
        .write_all(b"POST /predict HTTP/1.1\r\nHost:")
        .unwrap();
    answers_promptly(&addr, 2.0);
    read_until_closed(&mut slow_head, 5);
    // One that sends its head and part of the body: 408 after the body timeout.
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"que")
        .unwrap();
    answers_promptly(&addr, 2.0);
    let reply = read_until_closed(&mut slow_body, 5);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // An idle connection is closed too.
    let mut idle = TcpStream::connect(&addr).unwrap();
    read_until_closed(&mut idle, 5);

    // Clients that drop their connections mid-head, mid-body, or right after
    // sending a whole request.
    let request = mnist_request(2, 64, None).to_string();
    for i in 0..30 {
        let mut s = TcpStream::connect(&addr).unwrap();
        let whole = format!(
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{request}",
            request.len()
        );
        let cut = [10, whole.len() / 2, whole.len()][i % 3];
        s.write_all(&whole.as_bytes()[..cut]).unwrap();
        drop(s);
    }
    answers_promptly(&addr, 5.0);

    // A client that pipelines requests and never reads the replies: its
    // connection is closed once the replies stop moving, others are served.
    let mut deaf = TcpStream::connect(&addr).unwrap();
    deaf.set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let pipelined = "GET /signal?seed=1 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4000);
    let writer = {
        let mut deaf = deaf.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = deaf.write_all(pipelined.as_bytes());
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    answers_promptly(&addr, 2.0);
    writer.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    read_until_closed(&mut deaf, 10);

    // Malformed HTTP.
    let mut garbage = TcpStream::connect(&addr).unwrap();
    garbage.write_all(b"\x00\x01 nonsense \r\n\r\n").unwrap();
    read_until_closed(&mut garbage, 5);
    let answer = http::request(&addr, "POST", "/predict", Some(&[0xff, 0xfe, 0x00])).unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.text().contains("not UTF-8"), "{}", answer.text());

    // Still serving, and it stops cleanly.
    answers_promptly(&addr, 2.0);
    server.stop().unwrap();
}

#[test]
fn the_serve_command_says_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let error = pixel_transformer::cli::run_from::<2, 1, ImageDomain<1>, _, _>([
        "image",
        "serve",
        "--checkpoint",
        "pretrained",
        "--port",
        &port,
    ])
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("the port is in use"), "{message}");
    assert!(message.contains("--port 0"), "{message}");
}
