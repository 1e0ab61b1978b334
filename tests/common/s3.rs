//! A real S3-compatible server for tests: `s3s-fs` (it verifies SigV4 signatures and presigned
//! URLs) on 127.0.0.1, an ephemeral port, a temporary root and one bucket; killed on drop.
//!
//! Install it with `cargo install s3s-fs --version 0.14.1 --features binary --locked` (`.ci/run`
//! does). `S3S_FS=/path/to/s3s-fs` overrides where it is looked up.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "vidbuilder-test-key";
pub const SECRET_KEY: &str = "vidbuilder-test-secret-0123456789";

pub struct S3Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub bucket: String,
}

/// The `s3s-fs` executable: `$S3S_FS`, else on `PATH`, else `~/.cargo/bin/s3s-fs`.
pub fn s3s_fs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("s3s-fs");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cargo/bin/s3s-fs");
    assert!(
        p.is_file(),
        "s3s-fs not found: install it with \
         `cargo install s3s-fs --version 0.14.1 --features binary --locked` (or set S3S_FS)"
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts s3s-fs with one (empty) bucket, `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        // s3s-fs maps each bucket to a directory of its root.
        std::fs::create_dir_all(dir.path().join("data").join(bucket)).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut server = S3Server {
            child: None,
            dir,
            addr,
            endpoint: format!("http://{addr}"),
            bucket: bucket.to_string(),
        };
        server.start_again();
        server
    }

    /// The directory that holds the buckets.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts the process on the same port and root; waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "s3s-fs is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3s-fs.log"))
            .unwrap();
        let child = Command::new(s3s_fs_bin())
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.addr.port().to_string())
            .arg("--access-key")
            .arg(ACCESS_KEY)
            .arg("--secret-key")
            .arg(SECRET_KEY)
            .arg(self.root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("s3s-fs exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not accept connections on {} within 20 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (the stored objects stay) and waits until the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }

    /// `VIDBUILDER_S3_*` settings that point a server at this one (for `start_server`).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("VIDBUILDER_S3_BUCKET", self.bucket.as_str()),
            ("VIDBUILDER_S3_ENDPOINT", self.endpoint.as_str()),
            ("VIDBUILDER_S3_REGION", "us-east-1"),
            ("VIDBUILDER_S3_ACCESS_KEY_ID", ACCESS_KEY),
            ("VIDBUILDER_S3_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
