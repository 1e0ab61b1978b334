//! A real S3-compatible server for tests: `s3s-fs` (it verifies SigV4 signatures and presigned
//! URLs) run as `examples/s3_test_server.rs` on 127.0.0.1, an ephemeral port, a temporary root and
//! one bucket; killed on drop.
//!
//! `cargo test` builds the example with the tests; when a single test target is run on its own the
//! helper builds it first. `S3_TEST_SERVER=/path/to/binary` overrides where it is looked up.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const ACCESS_KEY: &str = "vidbuilder-test-key";
pub(crate) const SECRET_KEY: &str = "vidbuilder-test-secret-0123456789";

pub(crate) struct S3Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub bucket: String,
}

/// The test S3 server's executable: `$S3_TEST_SERVER`, else `target/<profile>/examples/`, built
/// there with cargo if missing.
pub(crate) fn s3_server_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("S3_TEST_SERVER") {
                return PathBuf::from(p);
            }
            // This test binary lives in target/<profile>/deps/.
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
            let bin = profile_dir.join("examples").join("s3_test_server");
            if !bin.is_file() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "--example", "s3_test_server"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("running cargo build --example s3_test_server");
                assert!(status.success(), "building the test S3 server failed");
            }
            assert!(bin.is_file(), "{} is missing", bin.display());
            bin
        })
        .clone()
}

/// A loopback port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts the server with one (empty) bucket, `bucket`.
    pub(crate) fn start(bucket: &str) -> S3Server {
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
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// (Re)starts the process on the same port and root; waits until it accepts connections.
    pub(crate) fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "the test S3 server is already running"
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("s3s-fs.log"))
            .unwrap();
        let child = Command::new(s3_server_bin())
            .arg(self.addr.to_string())
            .arg(ACCESS_KEY)
            .arg(SECRET_KEY)
            .arg(self.root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning the test S3 server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the test S3 server exited at start ({status}):\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the test S3 server did not accept connections on {} within 20 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (the stored objects stay) and waits until the port refuses connections.
    pub(crate) fn stop(&mut self) {
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

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }

    /// `VIDBUILDER_S3_*` settings that point a server at this one (for `start_server`).
    pub(crate) fn env(&self) -> Vec<(String, String)> {
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
