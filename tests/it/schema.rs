//! The served JSON Schema of the spec agrees with the server on a corpus of good and bad specs
//! (`tests/corpus/specs.json`: the examples, the contract's example, and the 400 cases of the
//! tests), checked by an independent validator (the `jsonschema` crate); `vidbuilder validate`
//! gives the same verdicts.

use std::process::Command;

use serde_json::Value;

use crate::common::start_server;

fn corpus() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/specs.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `vidbuilder validate FILE`'s exit status and output.
fn cli_validate(dir: &std::path::Path, name: &str, spec: &Value) -> (bool, String) {
    let file = dir.join(format!("{}.json", name.replace([' ', '/'], "-")));
    std::fs::write(&file, serde_json::to_vec(spec).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_schema_the_server_and_validate_agree_on_the_corpus() {
    let t = start_server(&[]).await;
    let (s, schema) = t.get_json("/api/schema/video-spec.json").await;
    assert_eq!(s, 200);
    let validator = jsonschema::draft7::new(&schema).expect("the served schema compiles");
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();

    for case in corpus["good"].as_array().unwrap() {
        let (name, spec) = (case["name"].as_str().unwrap(), &case["spec"]);
        let errors: Vec<String> = validator
            .iter_errors(spec)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "schema refuses good spec '{name}': {errors:?}"
        );
        let (ok, out) = cli_validate(dir.path(), name, spec);
        assert!(ok, "vidbuilder validate refuses good spec '{name}': {out}");
    }

    let mut server_only = 0;
    for case in corpus["bad"].as_array().unwrap() {
        let (name, spec) = (case["name"].as_str().unwrap(), &case["spec"]);
        let (s, _, body) = t.post("/api/jobs", spec).await;
        assert_eq!(s, 400, "the server accepts bad spec '{name}': {body}");
        assert_eq!(body["field"], case["field"], "'{name}': {body}");
        let schema_ok = validator.is_valid(spec);
        if case["serverOnly"] == true {
            // Tagged honestly: the schema cannot say it, so it accepts the spec.
            assert!(
                schema_ok,
                "'{name}' is tagged serverOnly but the schema refuses it"
            );
            server_only += 1;
        } else {
            assert!(!schema_ok, "the schema accepts bad spec '{name}'");
        }
        if !name.starts_with("webhookUrl") {
            // (`validate` checks the spec; webhook URLs are the submission's.)
            let (ok, out) = cli_validate(dir.path(), name, spec);
            let ssrf = name.contains("image URL");
            assert_eq!(ok, ssrf, "vidbuilder validate on '{name}': {out}");
        }
    }
    println!(
        "corpus: {} good, {} bad ({server_only} refused by the server only)",
        corpus["good"].as_array().unwrap().len(),
        corpus["bad"].as_array().unwrap().len()
    );
    let (_, jobs) = t.get_json("/api/jobs?limit=100").await;
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        0,
        "no bad spec made a job"
    );

    // The examples the studio offers are served without webhookUrl and are all valid.
    let (_, examples) = t.get_json("/api/examples").await;
    let examples = examples["examples"].as_array().unwrap();
    assert!(examples.iter().any(|e| e["name"] == "quick"));
    for e in examples {
        assert!(e["spec"].get("webhookUrl").is_none());
        assert!(validator.is_valid(&e["spec"]), "{}", e["name"]);
    }
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_the_docs_are_local() {
    let t = start_server(&[]).await;
    let (s, doc) = t.get_json("/api/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/api/generate-video-async", "post"),
        ("/api/generate-flexible-video", "post"),
        ("/api/jobs", "post"),
        ("/api/jobs", "get"),
        ("/api/jobs/{job_id}/cancel", "post"),
        ("/api/templates", "post"),
        ("/api/templates", "get"),
        ("/api/templates/{template_id}", "get"),
        ("/api/templates/{template_id}", "delete"),
        ("/api/batch", "post"),
        ("/api/job-status/{job_id}", "get"),
        ("/api/job-events/{job_id}", "get"),
        ("/api/download/{job_id}", "get"),
        ("/api/download/{job_id}/reel", "get"),
        ("/api/download/{job_id}/poster", "get"),
        ("/api/download/{job_id}/reel/poster", "get"),
        ("/api/download/{job_id}/captions", "get"),
        ("/api/download/{job_id}/outputs/{ratio}", "get"),
        ("/api/download/{job_id}/outputs/{ratio}/poster", "get"),
        ("/api/jobs/{job_id}/webhooks", "get"),
        ("/api/jobs/{job_id}/webhooks/redeliver", "post"),
        ("/api/webhooks/secret", "get"),
        ("/api/health", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/themes", "get"),
        ("/api/music", "get"),
        ("/api/cluster", "get"),
        ("/api/examples", "get"),
        ("/api/schema/video-spec.json", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in expected {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        let responses = op["responses"].as_object().unwrap();
        if path.starts_with("/api/") && path != "/api/health" {
            for code in ["401", "429", "503"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
        if op.get("requestBody").is_some() {
            for code in ["400", "408", "413", "415"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
        }
    }
    let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(count, expected.len(), "every operation is listed above");
    // The spec's schema is the served one, its scene types included.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["VideoSpec.scene"]["oneOf"]
            .as_array()
            .unwrap()
            .len(),
        vidbuilder_domain::spec::SCENE_TYPES.len()
    );
    // A spec with its webhook URL, or a stored template with its merge fields.
    assert_eq!(
        doc.pointer("/paths/~1api~1generate-video-async/post/requestBody/content/application~1json/schema/anyOf/0/allOf/0/$ref"),
        Some(&serde_json::json!("#/components/schemas/VideoSpecWithWebhook"))
    );
    assert_eq!(
        doc.pointer("/paths/~1api~1generate-video-async/post/requestBody/content/application~1json/schema/anyOf/1/$ref"),
        Some(&serde_json::json!("#/components/schemas/TemplateSubmissionWithWebhook"))
    );
    assert_eq!(
        doc.pointer("/paths/~1api~1batch/post/requestBody/content/application~1json/schema/properties/mergeFields/maxItems"),
        Some(&serde_json::json!(100))
    );
    // The docs page and its assets come from the binary.
    let html = t
        .http
        .get(format!("{}/docs/", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "nothing loads from the network: {html}"
    );
    let bundle = t
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status().as_u16(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    t.server.stop().await;
}
