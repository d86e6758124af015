//! `kernelize exec http ...` against a real HTTP server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A server that answers each connection with the next canned response (then 500) and
/// records each request's head and body.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve(responses: Vec<(u16, &'static str, &'static str)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        let mut responses = responses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            head.push_str(&String::from_utf8_lossy(&body));
            record.lock().unwrap().push(head);
            let (status, content_type, body) =
                responses
                    .next()
                    .unwrap_or((500, "text/plain", "no more answers"));
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    Server { url, seen }
}

fn kernelize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .env_remove("KERNELIZE_LOG")
        .output()
        .unwrap()
}

#[test]
fn exec_http_request_prints_status_headers_and_json_body() {
    let server = serve(vec![(200, "application/json", r#"{"id":7,"name":"Ada"}"#)]);
    let config = json!({
        "method": "POST",
        "url": format!("{}users", server.url),
        "headers": {"x-team": "data"},
        "query": {"dry_run": true},
        "body": {"name": "Ada"}
    });
    let o = kernelize(&[
        "exec",
        "http",
        "request",
        "--config",
        &config.to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({"id": 7, "name": "Ada"}));
    assert_eq!(out["headers"]["content-type"], "application/json");
    let seen = server.seen.lock().unwrap();
    assert!(
        seen[0].starts_with("POST /users?dry_run=true HTTP/1.1"),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("x-team: data"), "{}", seen[0]);
    assert!(seen[0].ends_with(r#"{"name":"Ada"}"#), "{}", seen[0]);
}

#[test]
fn a_non_2xx_answer_after_retries_exits_1_with_the_status_and_body_start() {
    let server = serve(vec![
        (503, "text/plain", "overloaded"),
        (404, "application/json", r#"{"error":"no such user 42"}"#),
    ]);
    let config = json!({
        "url": format!("{}users/42", server.url),
        "retry": {"max_attempts": 3, "base_delay": "10ms"}
    });
    let o = kernelize(&["exec", "http", "request", "--config", &config.to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap();
    assert!(first.contains("404"), "{err}");
    assert!(first.contains("no such user 42"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        server.seen.lock().unwrap().len(),
        2,
        "the 503 was retried, the 404 not"
    );

    // A config that is not a request is exit 2.
    let o = kernelize(&["exec", "http", "request", "--config", r#"{"url": 5}"#]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
