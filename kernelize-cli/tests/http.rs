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
        // Runs are recorded in memory, not in the user's store.
        .env("KERNELIZE_STORE", "memory:")
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

fn write_workflow(dir: &std::path::Path, server: &str, first_path: &str) -> std::path::PathBuf {
    let yaml = format!(
        r#"plugins:
  http:
    settings:
      base_url: "{server}"
      retry: {{ max_attempts: 2, base_delay: 10ms }}
    permissions:
      - {{ kind: network, host: 127.0.0.1 }}
workflows:
  sync_orders:
    params: {{ user: 7 }}
    steps:
      - name: get_user
        plugin: http
        action: request
        config: {{ url: "{first_path}${{params.user}}" }}
      - name: list_orders
        plugin: http
        action: paginate
        config:
          url: orders
          query: {{ owner: "${{steps.get_user.output.body.name}}" }}
          pagination: {{ kind: cursor, cursor_path: next }}
          items_path: data
      - name: post_summary
        plugin: http
        action: request
        config: {{ method: POST, url: summary }}
"#
    );
    let path = dir.join("sync.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn a_yaml_workflow_calls_rest_apis_through_the_http_plugin() {
    let server = serve(vec![
        (200, "application/json", r#"{"id":7,"name":"Ada"}"#),
        (200, "application/json", r#"{"data":[1,2],"next":"c2"}"#),
        (200, "application/json", r#"{"data":[3],"next":null}"#),
        (201, "text/plain", ""),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_workflow(dir.path(), &server.url, "users/");
    let o = kernelize(&["run", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["status"], "succeeded", "{out}");
    let steps = out["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_user", "list_orders", "post_summary"]);
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "succeeded" && s["attempts"] == 1),
        "{out}"
    );
    let seen = server.seen.lock().unwrap();
    assert!(seen[0].starts_with("GET /users/7 "), "{}", seen[0]);
    assert!(seen[1].starts_with("GET /orders?owner=Ada "), "{}", seen[1]);
    assert!(
        seen[2].starts_with("GET /orders?owner=Ada&cursor=c2 "),
        "{}",
        seen[2]
    );
    assert!(seen[3].starts_with("POST /summary "), "{}", seen[3]);
    assert!(
        seen[3].ends_with(r#"{"items":[1,2,3],"pages":2,"complete":true}"#),
        "the paginated items are the next step's body: {}",
        seen[3]
    );
}

#[test]
fn a_yaml_run_whose_request_fails_exits_1_and_names_the_step() {
    let server = serve(vec![(
        404,
        "application/json",
        r#"{"error":"no such user"}"#,
    )]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_workflow(dir.path(), &server.url, "users/");
    let o = kernelize(&["run", file.to_str().unwrap(), "--json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("get_user"), "{err}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["status"], "failed");
    assert_eq!(out["steps"][0]["status"], "failed");
    assert!(
        out["steps"][0]["error"].as_str().unwrap().contains("404"),
        "{out}"
    );
    assert!(
        out["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no such user"),
        "{out}"
    );
    assert_eq!(out["steps"][1]["status"], "cancelled");
    assert_eq!(server.seen.lock().unwrap().len(), 1, "a 404 is not retried");
}

#[test]
fn an_invalid_workflow_file_exits_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "workflows:\n  w:\n    steps:\n      - name: a\n        plugin: http\n        action: fetch\n",
    )
    .unwrap();
    let o = kernelize(&["run", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.yaml:6:17"), "{err}");
    assert!(err.contains("fetch"), "{err}");
    assert!(
        err.contains("request"),
        "the known actions are listed: {err}"
    );
}
