//! The S3-compatible server the tests run on loopback: `s3s-fs` (a file-system S3 that checks
//! SigV4 signatures and presigned URLs) as a library, served by hyper on one address.
//!
//! Built as an example so it shares the test build's dependencies instead of a separate
//! `cargo install`: `cargo build --example s3_test_server`.
//!
//! Usage: `s3_test_server <ADDR> <ACCESS_KEY> <SECRET_KEY> <ROOT>`; each bucket is a directory
//! of ROOT.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, access_key, secret_key, root] = args.as_slice() else {
        eprintln!("usage: s3_test_server <ADDR> <ACCESS_KEY> <SECRET_KEY> <ROOT>");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse()?;
    let fs = s3s_fs::FileSystem::new(PathBuf::from(root))
        .map_err(|e| format!("opening the store at {root}: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(
        access_key.as_str(),
        secret_key.as_str(),
    ));
    let service = builder.build();

    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "s3_test_server listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
