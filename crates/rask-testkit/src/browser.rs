//! A real headless browser for tests: Debian's Chromium driven over WebDriver by
//! `chromedriver` (both installed by `.ci/run`; found on `PATH`). Each [`Browser`] runs its
//! own chromedriver on a free loopback port, with a fresh profile, and stops both on drop.
//!
//! Chromium runs with the flags this machine needs (no sandbox as root, no background
//! networking: the network is closed) and `--enable-precise-memory-info`, so
//! `performance.memory` reports the page's JavaScript heap exactly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http;

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn err(m: impl Into<String>) -> std::io::Error {
    std::io::Error::other(m.into())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Fails, naming what is missing,
    /// when chromedriver or chromium is not installed (`.ci/run` installs both).
    pub fn start() -> std::io::Result<Browser> {
        let driver_bin = which("chromedriver")
            .ok_or_else(|| err("chromedriver is not on PATH (apt-get install chromium-driver)"))?;
        let chromium = which("chromium")
            .or_else(|| which("chromium-browser"))
            .ok_or_else(|| err("chromium is not on PATH (apt-get install chromium)"))?;
        let port = free_port()?;
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http::get(&format!("{base}/status")) {
                if r.status == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(err("chromedriver did not start within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--enable-precise-memory-info",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| err(format!("no session id in {v}")))?
            .to_string();
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<Value> {
        let body = body.map(|b| b.to_string());
        let r = http::request(
            method,
            &format!("{}{path}", self.base),
            &[("Content-Type", "application/json")],
            body.as_deref().map(str::as_bytes),
        )?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| err(format!("WebDriver answered non-JSON ({e}): {}", r.text())))?;
        if r.status != 200 {
            return Err(err(format!("WebDriver {method} {path}: {}", v["value"])));
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` (returns when the page's load event fired).
    pub fn goto(&self, url: &str) -> std::io::Result<()> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )?;
        Ok(())
    }

    /// Runs `script` (a function body: `return ...;`) in the page and returns its value.
    pub fn eval(&self, script: &str) -> std::io::Result<Value> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Evaluates `script` until it returns something truthy, or fails after `timeout` with
    /// the last value.
    pub fn wait_for(&self, script: &str, timeout: Duration) -> std::io::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script)?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "waited {timeout:?} for `{script}`; it last returned {v}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a PNG screenshot of the window to `path` (its folder is created).
    pub fn screenshot(&self, path: &Path) -> std::io::Result<()> {
        let v = self.call("GET", &self.session_path("/screenshot"), None)?;
        let b64 = v
            .as_str()
            .ok_or_else(|| err("the screenshot is not a string"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, base64_decode(b64).map_err(err)?)
    }

    /// The page's JavaScript heap in use, in bytes (`performance.memory.usedJSHeapSize`).
    pub fn js_heap_bytes(&self) -> std::io::Result<u64> {
        let v = self.eval("return performance.memory.usedJSHeapSize;")?;
        v.as_u64()
            .ok_or_else(|| err(format!("performance.memory gave {v}")))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with padding) into bytes.
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "base64 of length {} is not a multiple of 4",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quad in bytes.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | val(c).ok_or_else(|| format!("`{}` is not base64", c as char))?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a$==").is_err());
        assert!(base64_decode("abc").is_err());
    }
}
