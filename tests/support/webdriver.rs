//! A headless Chromium driven through chromedriver's WebDriver protocol
//! (W3C, JSON over HTTP), with the few commands the page tests use.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http;

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; ends the session and chromedriver when dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

/// The first of `names` found on the `PATH` or as a path.
fn find_program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        if Path::new(name).is_absolute() {
            return Path::new(name).is_file().then(|| name.into());
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. Where chromedriver is
    /// not installed, says so loudly and gives `None` (the caller skips);
    /// in CI (`CI` set), where `.ci/run` installs it, that is a failure.
    pub fn start() -> Option<Browser> {
        let Some(driver) = find_program(&["chromedriver", "/usr/lib/chromium/chromedriver"]) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is not installed, and CI must run the browser tests: \
                 .ci/run installs Debian's chromium and chromium-driver"
            );
            eprintln!(
                "\n*** SKIPPED: chromedriver is not installed, so the page was not tested in a \
                 browser. Install it (Debian: apt-get install chromium chromium-driver) to run \
                 this test. ***\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let mut browser = Browser {
            driver: child,
            addr: format!("127.0.0.1:{port}"),
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http::get(&browser.addr, "/status")
            .map(|r| r.json()["value"]["ready"] != json!(true))
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1320,900",
                     "--force-device-scale-factor=1"]
        });
        if let Some(binary) = find_program(&["chromium", "chromium-browser", "google-chrome"]) {
            options["binary"] = json!(binary);
        }
        let created = browser.command(
            "POST",
            "/session",
            json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": options } } }),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(browser)
    }

    /// Sends a WebDriver command; panics with the driver's message on an error.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let response = http::request(&self.addr, method, path, Some(body.as_bytes()))
            .unwrap_or_else(|e| panic!("chromedriver: {method} {path}: {e}"));
        let value = response.json()["value"].clone();
        assert!(
            response.status == 200,
            "chromedriver: {method} {path}: {}",
            value
        );
        value
    }

    fn session_command(&self, method: &str, path: &str, body: Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.session_command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body: `return …`) in the page.
    pub fn run(&self, script: &str) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Runs `script` until it returns `true`, or panics after `seconds`.
    pub fn wait_for(&self, script: &str, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while self.run(script) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "the page never satisfied `{script}`; its status line says: {}",
                self.run("return document.getElementById('status').textContent")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, css: &str) -> Value {
        let found = self.session_command(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        json!({ ELEMENT: found[ELEMENT].clone() })
    }

    /// Clicks the element `css` matches, at its centre.
    pub fn click(&self, css: &str) {
        let element = self.element(css);
        let id = element[ELEMENT].as_str().unwrap().to_string();
        self.session_command("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Clicks with the mouse at `(x, y)` CSS pixels from the centre of the
    /// element `css` matches, as a person would.
    pub fn click_at(&self, css: &str, x: i64, y: i64) {
        let origin = self.element(css);
        self.session_command(
            "POST",
            "/actions",
            json!({ "actions": [{
                "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "duration": 0, "origin": origin, "x": x, "y": y },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerUp", "button": 0 }
                ]
            }]}),
        );
        self.session_command("DELETE", "/actions", json!({}));
    }

    /// Chooses the file at `path` in the file input `css` matches.
    pub fn upload(&self, css: &str, path: &Path) {
        let element = self.element(css);
        let id = element[ELEMENT].as_str().unwrap().to_string();
        let text = path.display().to_string();
        self.session_command(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Saves a screenshot of the window as a PNG.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.session_command("GET", "/screenshot", json!({}));
        let png = base64_decode(encoded.as_str().expect("base64 text"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http::request(&self.addr, "DELETE", &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {}", c as char),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= (*d as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
