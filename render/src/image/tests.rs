//! Image loading against a real HTTP server on loopback and real files.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vidbuilder_domain::spec::{Scene, SceneContent};

use super::*;

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut img = image::RgbaImage::new(w, h);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgba([
            (x * 40) as u8,
            (y * 40) as u8,
            200,
            if x == 0 { 128 } else { 255 },
        ]);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        6,
        4,
        image::Rgb([10, 200, 30]),
    ));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// One canned answer: status line, headers, body, and a delay before it.
struct Answer {
    status: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    delay: Duration,
}

fn typed(ctype: &'static str, body: Vec<u8>) -> Answer {
    Answer {
        status: "200 OK",
        headers: vec![("content-type", ctype)],
        body,
        delay: Duration::ZERO,
    }
}

fn redirect(to: &'static str) -> Answer {
    Answer {
        status: "302 Found",
        headers: vec![("location", to)],
        body: Vec::new(),
        delay: Duration::ZERO,
    }
}

/// The answer to each path the tests ask for.
fn route(path: &str) -> Answer {
    match path {
        "/ok.png" => typed("image/png", png(4, 3)),
        "/ok.jpg" => typed("image/jpeg", encoded(image::ImageFormat::Jpeg)),
        "/ok.gif" => typed("image/gif", encoded(image::ImageFormat::Gif)),
        // a PNG served with a JPEG type still decodes: the bytes decide
        "/mislabelled" => typed("image/jpeg", png(4, 3)),
        "/page" => typed("text/html", b"<html></html>".to_vec()),
        // bytes with no image type (what a server sends for an untyped body)
        "/no-type" => typed("application/octet-stream", png(2, 2)),
        "/fake.png" => typed("image/png", b"GIF? no, text".to_vec()),
        "/big.png" => typed("image/png", vec![0u8; 300_000]),
        "/huge-dims.png" => typed("image/png", png(200, 10)),
        "/slow.png" => Answer {
            delay: Duration::from_secs(5),
            ..typed("image/png", png(2, 2))
        },
        // distinct sources on one host, each answered slowly (see PACED_*)
        p if p.starts_with("/paced/") => Answer {
            delay: Duration::from_millis(300),
            ..typed("image/png", png(4, 3))
        },
        "/busy.png" => Answer {
            status: "503 Service Unavailable",
            ..typed("text/plain", b"try later".to_vec())
        },
        "/slow-down.png" => Answer {
            status: "429 Too Many Requests",
            ..typed("text/plain", b"slow down".to_vec())
        },
        "/forbidden.png" => Answer {
            status: "403 Forbidden",
            ..typed("text/plain", b"no".to_vec())
        },
        "/redirect" => redirect("/ok.png"),
        "/redirect-private" => redirect("http://10.1.2.3/x.png"),
        "/loop" => redirect("/loop"),
        _ => Answer {
            status: "404 Not Found",
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        },
    }
}

/// `/paced/…` requests being answered now, and the most at once.
static PACED_NOW: AtomicUsize = AtomicUsize::new(0);
static PACED_PEAK: AtomicUsize = AtomicUsize::new(0);

/// A plain HTTP/1.1 server on loopback answering [`route`], one request per connection;
/// returns its address.
async fn server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = route(&path);
                let paced = path.starts_with("/paced/");
                if paced {
                    let now = PACED_NOW.fetch_add(1, Ordering::SeqCst) + 1;
                    PACED_PEAK.fetch_max(now, Ordering::SeqCst);
                }
                tokio::time::sleep(answer.delay).await;
                if paced {
                    PACED_NOW.fetch_sub(1, Ordering::SeqCst);
                }
                let mut out = format!("HTTP/1.1 {}\r\n", answer.status);
                for (k, v) in &answer.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    answer.body.len()
                ));
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.write_all(&answer.body).await;
            });
        }
    });
    addr
}

/// A raw HTTP/1.1 server that answers with an image type, no Content-Length, and streams
/// zeros until the client gives up: the byte limit must hold while streaming.
async fn endless_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 1024];
                let _ = sock.read(&mut req).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nconnection: close\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![0u8; 16 * 1024];
                for _ in 0..1000 {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn loopback_allowed() -> ImageSettings {
    ImageSettings {
        max_bytes: 200_000,
        max_video_bytes: 2_000_000,
        timeout: Duration::from_millis(800),
        max_side: 100,
        max_pixels: 5_000,
        ssrf: Arc::new(SsrfGuard::new(&["127.0.0.0/8"]).unwrap()),
        ..crate::tests::image_settings()
    }
}

async fn get_image(settings: &ImageSettings, url: &str) -> Result<Pixmap, ImageError> {
    let c = client(settings).unwrap();
    let bytes = fetch(&c, settings, url).await?;
    decode(&bytes, settings)
}

#[tokio::test]
async fn urls_are_fetched_within_their_limits() {
    let addr = server().await;
    let s = loopback_allowed();
    let url = |p: &str| format!("http://{addr}{p}");

    let pm = get_image(&s, &url("/ok.png")).await.unwrap();
    assert_eq!((pm.width(), pm.height()), (4, 3));
    // premultiplied: the half-transparent first column has its colour scaled by its alpha
    let p = pm.pixel(0, 2).unwrap();
    assert_eq!((p.alpha(), p.green()), (128, 40));
    for ok in ["/ok.jpg", "/ok.gif", "/mislabelled", "/redirect"] {
        let pm = get_image(&s, &url(ok))
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        assert!(pm.width() >= 4, "{ok}");
    }

    // (path, step, reason, transient: the render is tried again)
    let fails: [(&str, &str, &str, bool); 12] = [
        ("/missing.png", "fetched", "HTTP 404", false),
        ("/forbidden.png", "fetched", "HTTP 403", false),
        ("/busy.png", "fetched", "HTTP 503", true),
        ("/slow-down.png", "fetched", "HTTP 429", true),
        ("/page", "fetched", "content type 'text/html'", false),
        (
            "/no-type",
            "fetched",
            "content type 'application/octet-stream'",
            false,
        ),
        (
            "/fake.png",
            "decoded",
            "not a PNG, JPEG, WebP or GIF",
            false,
        ),
        ("/big.png", "fetched", "larger than 200000 bytes", false),
        ("/huge-dims.png", "decoded", "too large", false),
        ("/slow.png", "fetched", "timed out", true),
        ("/redirect-private", "fetched", "10.1.2.3", false),
        ("/loop", "fetched", "more than 3 redirects", false),
    ];
    for (path, step, why, transient) in fails {
        let e = get_image(&s, &url(path)).await.unwrap_err();
        assert_eq!(e.step, step, "{path}: {e:?}");
        assert!(e.reason.contains(why), "{path}: {e:?}");
        assert_eq!(e.transient, transient, "{path}: {e:?}");
    }
    // nothing listening: the connection fails, which may pass
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = get_image(&s, &format!("http://127.0.0.1:{port}/ok.png"))
        .await
        .unwrap_err();
    assert!(e.reason.contains("connection failed"), "{e:?}");
    assert!(e.transient, "{e:?}");
    let endless = endless_server().await;
    let e = get_image(&s, &format!("http://{endless}/stream.png"))
        .await
        .unwrap_err();
    assert!(e.reason.contains("larger than 200000 bytes"), "{e:?}");
    let e = get_image(&s, "ftp://example.com/a.png").await.unwrap_err();
    assert!(e.reason.contains("http"), "{e:?}");
}

#[tokio::test]
async fn loopback_is_refused_unless_allowlisted() {
    let addr = server().await;
    let s = crate::tests::image_settings();
    for u in [
        format!("http://{addr}/ok.png"),
        format!("http://localhost:{}/ok.png", addr.port()),
    ] {
        let e = get_image(&s, &u).await.unwrap_err();
        assert!(e.reason.contains("SSRF"), "{u}: {e:?}");
        assert!(!e.transient, "a refusal is final: {u}: {e:?}");
        assert!(e.reason.contains("not a destination"), "{u}: {e:?}");
        // The reason reaches clients (job-status): it names no range.
        assert!(!e.reason.contains("loopback"), "{u}: {e:?}");
    }
    // the metadata address is refused before any connection is tried
    let e = get_image(&s, "http://169.254.169.254/latest/x.png")
        .await
        .unwrap_err();
    assert!(e.reason.contains("not a destination"), "{e:?}");
    assert!(!e.reason.contains("metadata"), "{e:?}");
    // A name that resolves to an internal address: the client is told the name it gave, never
    // the address it resolved to.
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    let internal = !host.is_empty()
        && tokio::net::lookup_host((host, 80))
            .await
            .is_ok_and(|mut a| {
                let guard = vidbuilder_net::SsrfGuard::default();
                a.all(|a| guard.check_ip(a.ip()).is_err())
            });
    if internal {
        let e = get_image(&s, &format!("http://{host}:{}/ok.png", addr.port()))
            .await
            .unwrap_err();
        assert!(e.reason.contains(&format!("'{host}'")), "{e:?}");
        for leak in [
            "127.", "10.", "172.", "192.168", "::1", "loopback", "private",
        ] {
            assert!(!e.reason.contains(leak), "{leak} leaked: {e:?}");
        }
    } else {
        eprintln!("this machine's host name does not resolve to an internal address: skipped");
    }
}

#[test]
fn assets_stay_inside_their_directory() {
    let root = tempfile::tempdir().unwrap();
    let assets = root.path().join("assets");
    std::fs::create_dir_all(assets.join("brand")).unwrap();
    std::fs::write(assets.join("brand/logo.png"), png(3, 3)).unwrap();
    std::fs::write(root.path().join("secret.png"), png(3, 3)).unwrap();
    std::fs::write(assets.join("big.png"), vec![0u8; 300_000]).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.path().join("secret.png"), assets.join("out.png")).unwrap();
        std::os::unix::fs::symlink(root.path(), assets.join("up")).unwrap();
        // a symlink that stays inside is fine
        std::os::unix::fs::symlink(assets.join("brand/logo.png"), assets.join("alias.png"))
            .unwrap();
    }
    let s = ImageSettings {
        assets_dir: Some(assets.clone()),
        ..loopback_allowed()
    };
    let pm = decode(&read_asset(&s, "brand/logo.png").unwrap(), &s).unwrap();
    assert_eq!(pm.width(), 3);
    #[cfg(unix)]
    assert!(read_asset(&s, "alias.png").is_ok());
    let refused = [
        ("../secret.png", "relative"),
        ("brand/../../secret.png", "relative"),
        ("/etc/passwd", "relative"),
        ("nope.png", "no such file"),
        ("big.png", "larger than"),
        ("brand", "not a file"),
        #[cfg(unix)]
        ("out.png", "outside the assets directory"),
        #[cfg(unix)]
        ("up/secret.png", "outside the assets directory"),
    ];
    for (rel, why) in refused {
        let e = read_asset(&s, rel).unwrap_err();
        assert_eq!(e.step, "read");
        assert!(e.reason.contains(why), "{rel}: {e:?}");
    }
    let none = crate::tests::image_settings();
    let e = read_asset(&none, "brand/logo.png").unwrap_err();
    assert!(e.reason.contains("no assets directory"), "{e:?}");
}

#[tokio::test]
async fn prefetch_names_the_field_of_a_failing_image() {
    let addr = server().await;
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("logo.png"), png(5, 5)).unwrap();
    let s = ImageSettings {
        assets_dir: Some(assets.path().to_path_buf()),
        ..loopback_allowed()
    };
    let image_scene = |src: ImageSource| {
        Scene::new(
            2.0,
            SceneContent::Image {
                src,
                fit: Fit::Cover,
                caption: None,
                ken_burns: true,
            },
        )
    };
    let ok = ImageSource::Url(format!("http://{addr}/ok.png"));
    let logo = ImageSource::Asset("logo.png".into());
    let mut spec = VideoSpec {
        theme: "corporate".into(),
        music: None,
        quality: vidbuilder_domain::spec::Quality::Draft,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: vec![
            image_scene(ok.clone()),
            image_scene(logo.clone()),
            image_scene(ok.clone()),
        ],
        font: None,
    };
    let images = prefetch(&spec, &s).await.unwrap();
    assert_eq!(images.len(), 2, "each distinct source once");
    assert_eq!(images.get(&logo).unwrap().width(), 5);
    assert!(images.get(&ImageSource::Asset("other.png".into())).is_err());

    let missing = format!("http://{addr}/missing.png");
    spec.scenes
        .push(image_scene(ImageSource::Url(missing.clone())));
    let e = prefetch(&spec, &s).await.unwrap_err();
    assert!(matches!(e, RenderError::Image(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("scenes[3].content.src: image {missing} could not be fetched: HTTP 404")
    );
    // a server that is busy: the same message, but the render is tried again
    let busy = format!("http://{addr}/busy.png");
    spec.scenes[3] = image_scene(ImageSource::Url(busy.clone()));
    let e = prefetch(&spec, &s).await.unwrap_err();
    assert!(matches!(e, RenderError::MediaUnavailable(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("scenes[3].content.src: image {busy} could not be fetched: HTTP 503")
    );
}

#[test]
fn fitting_covers_or_contains() {
    let s = crate::tests::image_settings();
    let src = decode(&png(40, 20), &s).unwrap();
    let cover = fitted(&src, 30.0, 30.0, Fit::Cover, 1.0);
    assert_eq!((cover.width(), cover.height()), (30, 30));
    let contain = fitted(&src, 30.0, 30.0, Fit::Contain, 1.0);
    assert_eq!((contain.width(), contain.height()), (30, 15));
    let zoomed = fitted(&src, 30.0, 30.0, Fit::Cover, 1.1);
    assert_eq!((zoomed.width(), zoomed.height()), (33, 33));
    // resampled premultiplied pixels stay valid (colour ≤ alpha)
    assert!(contain
        .pixels()
        .iter()
        .all(|p| p.red() <= p.alpha() && p.green() <= p.alpha() && p.blue() <= p.alpha()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_to_one_host_are_limited_across_jobs() {
    let addr = server().await;
    let s = ImageSettings {
        hosts: HostLimits::new(2),
        max_concurrent_per_job: 8,
        ..loopback_allowed()
    };
    let spec = |job: usize| VideoSpec {
        theme: "modern".into(),
        music: None,
        quality: vidbuilder_domain::spec::Quality::Draft,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: (0..6)
            .map(|i| {
                Scene::new(
                    1.0,
                    SceneContent::Image {
                        src: ImageSource::Url(format!("http://{addr}/paced/{job}-{i}.png")),
                        fit: Fit::Cover,
                        caption: None,
                        ken_burns: false,
                    },
                )
            })
            .collect(),
        font: None,
    };
    // Two jobs of six images each, all on one host, at once: never more than two in flight.
    let (a, b) = (spec(1), spec(2));
    let (ra, rb) = tokio::join!(prefetch(&a, &s), prefetch(&b, &s));
    assert_eq!(ra.unwrap().len(), 6);
    assert_eq!(rb.unwrap().len(), 6);
    assert_eq!(PACED_PEAK.load(Ordering::SeqCst), 2);
    assert_eq!(s.hosts.in_flight("127.0.0.1"), 0);
}

#[test]
fn decoded_images_are_kept_at_the_size_they_are_drawn_at() {
    let s = crate::tests::image_settings();
    let small = decode_for_draw(&png(600, 400), &s, 211).unwrap();
    assert_eq!((small.width(), small.height()), (317, 211));
    let same = decode_for_draw(&png(50, 90), &s, 211).unwrap();
    assert_eq!((same.width(), same.height()), (50, 90), "never scaled up");
    let mut spec = VideoSpec {
        theme: "modern".into(),
        music: None,
        quality: vidbuilder_domain::spec::Quality::Draft,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: Vec::new(),
        font: None,
    };
    assert_eq!(draw_limit(&spec), 704);
    spec.generate_reels = true;
    assert_eq!(draw_limit(&spec), 2112, "the reel is 1920 tall");
    spec.quality = vidbuilder_domain::spec::Quality::K4;
    assert_eq!(draw_limit(&spec), 4224);
}
