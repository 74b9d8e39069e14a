//! A MailDev of the test's own (`scripts/setup.sh maildev`), on free ports: the SMTP server the
//! notifier sends to, and its JSON API (`GET /email`) to read what arrived. It runs under a
//! shell that stops it when the handle is dropped or `stop`ped, or when the test binary exits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, workspace_root};

pub struct MailDev {
    pub smtp_port: u16,
    pub web_port: u16,
    child: Option<Child>,
}

impl MailDev {
    pub fn start() -> Self {
        MailDev::start_on(free_port(), free_port())
    }

    /// Starts MailDev on the given ports (again, after `stop`, for an outage that ends).
    pub fn start_on(smtp_port: u16, web_port: u16) -> Self {
        let bin = workspace_root().join(".tools/maildev/node_modules/.bin/maildev");
        assert!(bin.exists(), "MailDev not found: run `scripts/setup.sh maildev`");
        let script = format!(
            "exec 3<&0; '{bin}' --ip 127.0.0.1 --smtp {smtp_port} --web {web_port} --silent >/dev/null 2>&1 & pid=$!; \
             (cat <&3 >/dev/null; kill $pid 2>/dev/null) & wait $pid",
            bin = bin.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start MailDev");
        let maildev = MailDev {
            smtp_port,
            web_port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while maildev.get("/email").is_none() || TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
            assert!(Instant::now() < deadline, "MailDev did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        maildev
    }

    /// Stops MailDev and waits until its SMTP port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.smtp_port)).is_ok() {
            assert!(Instant::now() < deadline, "MailDev did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.web_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200")
            .then(|| serde_json::from_str(body).ok())?
    }

    /// Every mail received, oldest first, as MailDev's JSON (`to`, `subject`, `text`, `html`, …).
    pub fn emails(&self) -> Vec<Value> {
        match self.get("/email") {
            Some(Value::Array(mails)) => mails,
            other => panic!("MailDev's GET /email answered {other:?}"),
        }
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// A mail's recipients' addresses.
pub fn to(mail: &Value) -> Vec<String> {
    mail["to"]
        .as_array()
        .map(|to| {
            to.iter()
                .filter_map(|a| a["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
