//! The OpenAPI 3.1 document (`GET /api/openapi.json`) and the interactive docs (`/docs`).
//!
//! Paths come from the handlers' `#[utoipa::path]` attributes, collected as the routers are built
//! (utoipa-axum: a route and its documentation are declared in one place); response bodies from
//! the types the handlers return. The spec's request schema is the one served at
//! `/api/schema/video-spec.json` (built from the validator's tables and this server's themes,
//! tracks and limits), its definitions placed under `components/schemas/VideoSpec.*`. Responses
//! every route can give (an API key refused, a rate limit, a JobManager that did not answer, a
//! body that is too large, too slow or not JSON) are added to every operation they apply to, so
//! the document lists every status the server answers with.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{Modify, OpenApi, ToSchema};
use vidbuilder_domain::ValidationContext;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The document's fixed parts; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vidbuilder",
        description = "Self-hostable async video generation: POST a JSON spec, get 202 and a jobId, follow the job by webhooks, job-status or its event stream, download the MP4.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "jobs", description = "Submit, follow, list and cancel jobs; batches from a template."),
        (name = "templates", description = "Specs with {{name}} merge fields, stored to be rendered with values."),
        (name = "downloads", description = "Finished videos and their posters."),
        (name = "webhooks", description = "Delivery logs, redelivery, signing secrets."),
        (name = "server", description = "Health, readiness, catalog, cluster, schema and examples.")
    ),
    components(schemas(
        ErrorBody,
        SseEvent,
        vidbuilder_domain::job::JobResult,
        vidbuilder_domain::job::S3Upload,
        vidbuilder_domain::job::S3Object,
        vidbuilder_domain::job::OutputLinks,
        vidbuilder_domain::spec::Format
    )),
    modifiers(&BearerKeys)
)]
pub(super) struct ApiDoc;

/// Every error answer: a short `error` title, a `message` saying what to do, the `field` at
/// fault when there is one, `retryAfter` (seconds, also as the `Retry-After` header) when
/// retrying later helps, and any extra fields the contract shows (`hint`, `receivedUrl`, `jobId`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A short title, e.g. `Invalid video spec.`.
    pub error: String,
    /// What went wrong and what to do.
    pub message: String,
    /// The request field at fault (`scenes[0].duration`, `webhookUrl`, `jobId`, `Idempotency-Key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One Server-Sent Event of `GET /api/job-events/:jobId`: `event` is `status`, `progress`,
/// `message` or `result`; `data` is JSON (`{"jobId", "status"}`, `{"jobId", "progress"}`,
/// `{"jobId", "message"}`, or the job-status body for `result`); the last event of each group of
/// changes carries an `id` to resume from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SseEvent {
    /// `status`, `progress`, `message` or `result`.
    pub event: String,
    /// The event's JSON, as text.
    pub data: String,
    /// The id to resume from (`Last-Event-ID`), on the last event of a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The video spec a submission carries (the schema of `/api/schema/video-spec.json`, put in
/// place when the document is served).
pub struct VideoSpecBody;

impl utoipa::PartialSchema for VideoSpecBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().into()
    }
}

impl ToSchema for VideoSpecBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("VideoSpec")
    }
}

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, when the server has keys configured (auth.api_keys); without keys every route is open.",
                    ))
                    .build(),
            ),
        );
    }
}

fn error_response(description: &str, retry: bool) -> Value {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    if retry {
        r["headers"] = json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}});
    }
    r
}

/// Rewrites `#/definitions/X` references to `#/components/schemas/VideoSpec.X`.
fn relocate_refs(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/definitions/") {
                    *r = format!("#/components/schemas/VideoSpec.{name}");
                }
            }
            o.values_mut().for_each(relocate_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(relocate_refs),
        _ => {}
    }
}

/// The served document: `api` (paths from the routers) with the spec's schema for this server's
/// validation context, and the responses every route can give.
pub fn document(
    api: utoipa::openapi::OpenApi,
    validation: &ValidationContext,
    max_batch_jobs: usize,
) -> Value {
    let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serialises");
    let mut spec = vidbuilder_domain::spec::schema::json_schema(validation);
    let spec_obj = spec.as_object_mut().expect("an object");
    spec_obj.remove("$schema");
    spec_obj.remove("$id");
    let definitions = match spec_obj.remove("definitions") {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    relocate_refs(&mut spec);
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    for (name, mut def) in definitions {
        relocate_refs(&mut def);
        schemas.insert(format!("VideoSpec.{name}"), def);
    }
    schemas.insert("VideoSpec".into(), spec);
    // The contract's endpoint requires a webhook URL.
    schemas.insert(
        "VideoSpecWithWebhook".into(),
        json!({
            "description": "A video spec with its webhookUrl (required by POST /api/generate-video-async).",
            "allOf": [{"$ref": "#/components/schemas/VideoSpec"}],
            "required": ["webhookUrl"],
            "properties": {"webhookUrl": {
                "type": "string",
                "pattern": vidbuilder_domain::spec::schema::WEBHOOK_URL_PATTERN
            }}
        }),
    );
    // The submission endpoints take a spec, or a stored template with merge-field values.
    let hook = json!({"anyOf": [
        {"type": "string", "pattern": vidbuilder_domain::spec::schema::WEBHOOK_URL_PATTERN,
         "maxLength": validation.limits.max_url_chars},
        {"type": "null"}
    ]});
    let from_template = |hook_required: bool| {
        let mut s = json!({
            "description": "A stored template's id with a value for each of its merge fields (POST /api/templates).",
            "type": "object",
            "required": ["templateId"],
            "additionalProperties": false,
            "properties": {
                "templateId": {"type": "string", "description": "The template's id."},
                "mergeFields": {"anyOf": [{"type": "object"}, {"type": "null"}],
                                "description": "A value for each merge field the template uses."},
                "webhookUrl": hook.clone(),
                "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}],
                             "description": "The job's metadata, in place of the template's."}
            }
        });
        if hook_required {
            s["required"] = json!(["templateId", "webhookUrl"]);
            s["properties"]["webhookUrl"] = json!({"type": "string",
                "pattern": vidbuilder_domain::spec::schema::WEBHOOK_URL_PATTERN});
        }
        s
    };
    schemas.insert("TemplateSubmission".into(), from_template(false));
    schemas.insert("TemplateSubmissionWithWebhook".into(), from_template(true));
    let no_template = json!({"not": {"required": ["templateId"]}});
    for (path, spec, template) in [
        (
            "/paths/~1api~1generate-video-async/post",
            "VideoSpecWithWebhook",
            "TemplateSubmissionWithWebhook",
        ),
        ("/paths/~1api~1jobs/post", "VideoSpec", "TemplateSubmission"),
        (
            "/paths/~1api~1generate-flexible-video/post",
            "VideoSpec",
            "TemplateSubmission",
        ),
    ] {
        if let Some(op) = doc.pointer_mut(path) {
            op["requestBody"]["content"]["application/json"]["schema"] = json!({"anyOf": [
                {"allOf": [{"$ref": format!("#/components/schemas/{spec}")}, no_template.clone()]},
                {"$ref": format!("#/components/schemas/{template}")}
            ]});
            op["responses"]["404"] = json!({
                "description": "The templateId names no template (or not the caller's).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            });
        }
    }
    // A batch: exactly one of templateId and spec; each set of values an object.
    if let Some(body) =
        doc.pointer_mut("/paths/~1api~1batch/post/requestBody/content/application~1json/schema")
    {
        *body = json!({
            "type": "object",
            "required": ["mergeFields"],
            "additionalProperties": false,
            "oneOf": [
                {"required": ["templateId"], "not": {"required": ["spec"]}},
                {"required": ["spec"], "not": {"required": ["templateId"]}}
            ],
            "properties": {
                "templateId": {"type": "string", "description": "A stored template (give this or spec)."},
                "spec": {"type": "object", "description": "A template inline (give this or templateId)."},
                "webhookUrl": hook.clone(),
                "mergeFields": {"type": "array", "minItems": 1, "maxItems": max_batch_jobs,
                                "items": {"type": "object"},
                                "description": "One set of merge-field values per job."},
                "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}],
                             "description": "Every job's metadata (batchId and batchIndex are added)."}
            }
        });
    }

    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let api_route = path.starts_with("/api/") && path != "/api/health";
        for (method, op) in item.as_object_mut().expect("a path item").iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "delete" | "patch") {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            if api_route {
                op["security"] = json!([{}, {"apiKey": []}]);
            }
            let responses = op["responses"].as_object_mut().expect("responses");
            let mut add = |code: &str, r: Value| {
                responses.entry(code.to_string()).or_insert(r);
            };
            if api_route {
                add(
                    "401",
                    error_response(
                        "API keys are configured and this request has no valid key.",
                        false,
                    ),
                );
                add("429", error_response("Too many requests for this key (auth.rate_limit_per_minute), or a queue is full.", true));
                add("503", error_response("The job manager did not answer in time, or the server is shutting down; nothing was changed.", true));
            }
            if has_body {
                add("400", error_response("The body is not valid: malformed JSON, nested too deeply, or a spec error naming its field.", false));
                add(
                    "408",
                    error_response(
                        "The body did not arrive within http.body_timeout_secs.",
                        false,
                    ),
                );
                add(
                    "413",
                    error_response("The body is larger than max_body_bytes.", false),
                );
                add(
                    "415",
                    error_response("The body is not sent as application/json.", false),
                );
            }
        }
    }
    doc
}
