//! Templates with merge fields, and batches: `POST/GET /api/templates`,
//! `GET/DELETE /api/templates/:templateId`, `POST /api/batch`, and the `{"templateId",
//! "mergeFields"}` form of the submission endpoints ([`resolve`]).
//!
//! A template is a spec whose strings may hold `{{name}}` merge fields
//! ([`vidbuilder_domain::template`] says how they are filled in). It is checked when it is stored:
//! every part of it that no merge field touches must already be valid. Templates are kept by the
//! JobManager's store and belong to the API key that stored them: another key gets `404`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_actors::manager::{JobManagerMsg, SubmitRequest, TemplateError, TemplateMsg};
use vidbuilder_domain::job::JobStatus;
use vidbuilder_domain::store::Idempotency;
use vidbuilder_domain::template::{self, MergeError, TemplateId, TemplateRecord};
use vidbuilder_domain::validate_spec;

use super::auth::Caller;
use super::error::ApiError;
use super::jobs::{
    check_image_urls, check_videos, idempotency, parse_body, submit_error, webhook_url,
};
use super::openapi::ErrorBody;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, delete_template))
        .routes(routes!(batch))
}

/// A stored template, as `GET /api/templates/:templateId` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TemplateBody {
    /// Its id (`tpl_…`).
    pub template_id: String,
    /// The name given when it was stored.
    pub name: Option<String>,
    /// The merge fields its strings use, sorted: a submission gives a value for each.
    pub fields: Vec<String>,
    /// When it was stored.
    pub created_at: String,
    /// The spec as stored, merge fields and all (left out of lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Value>,
}

impl TemplateBody {
    fn of(t: &TemplateRecord, with_spec: bool) -> TemplateBody {
        TemplateBody {
            template_id: t.id.to_string(),
            name: t.name.clone(),
            fields: t.fields.clone(),
            created_at: t.created_at.clone(),
            spec: with_spec.then(|| t.spec.clone()),
        }
    }
}

/// `GET /api/templates`' body.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TemplateList {
    /// The caller's most recent templates, newest first (without their specs).
    pub templates: Vec<TemplateBody>,
    /// How many templates the caller has in all.
    pub total: usize,
}

/// `POST /api/templates`' body.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Read from JSON by hand (for field-precise errors); here for the schema.
pub(super) struct NewTemplate {
    /// A name for it (up to 200 characters).
    #[schema(max_length = 200)]
    name: Option<String>,
    /// The spec, as `POST /api/jobs` takes it, whose strings may hold `{{name}}` merge fields
    /// (no `webhookUrl`: each submission gives its own).
    #[schema(value_type = Object)]
    spec: Value,
}

/// One job of a batch, in `POST /api/batch`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchJob {
    /// The job's id.
    pub job_id: String,
    /// `/api/job-status/:jobId`.
    pub status_url: String,
    /// Its status now (`queued` for a new job).
    pub status: JobStatus,
}

/// `POST /api/batch`'s `202`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchAccepted {
    /// Always true.
    pub success: bool,
    /// The batch's id, also put in each job's `metadata.batchId`.
    pub batch_id: String,
    /// One job per set of `mergeFields`, in their order.
    pub jobs: Vec<BatchJob>,
}

/// `POST /api/batch`'s body.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Read from JSON by hand (for field-precise errors); here for the schema.
#[schema(as = BatchRequest)]
pub(super) struct BatchRequestDoc {
    /// A stored template (give this or `spec`).
    template_id: Option<String>,
    /// A template given inline (give this or `templateId`).
    #[schema(value_type = Option<Object>)]
    spec: Option<Value>,
    /// Where every job's webhooks go (optional: follow the jobs by job-status instead).
    webhook_url: Option<String>,
    /// One set of merge-field values per job (1 to `limits.max_batch_jobs`).
    #[schema(value_type = Vec<Object>, min_items = 1)]
    merge_fields: Vec<Value>,
    /// Every job's `metadata` (in place of the template's); `batchId` and `batchIndex` are added.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Template not found.",
        format!("No template with id '{id}'."),
    )
    .field("templateId")
}

fn bad_template_id() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "Invalid templateId.",
        "templateId must be a template's id, as POST /api/templates answered it.",
    )
    .field("templateId")
}

fn template_error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::TooMany { .. } => {
            ApiError::new(StatusCode::CONFLICT, "Too many templates.", e.to_string())
        }
        TemplateError::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Could not reach the template store.",
            e.to_string(),
        )
        .retry_after(5),
    }
}

async fn call<T>(
    state: &AppState,
    msg: impl FnOnce(ractor::RpcReplyPort<Result<T, TemplateError>>) -> TemplateMsg,
) -> Result<T, ApiError>
where
    T: Send + 'static,
{
    ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::Template(msg(reply)),
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(super::manager_unavailable)?
    .map_err(template_error)
}

/// The caller's template `id`, or `404` (unknown, badly written, or another key's).
async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<TemplateRecord, ApiError> {
    let parsed = TemplateId::parse(id).ok_or_else(|| not_found(id))?;
    let found = call(state, |reply| TemplateMsg::Get { id: parsed, reply }).await?;
    found
        .filter(|t| caller.may_see_owner(t.owner.as_deref()))
        .ok_or_else(|| not_found(id))
}

/// Refuses keys other than `allowed`, naming the first one.
fn only_keys(body: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Unknown field.",
            format!(
                "{what} takes only {}; '{k}' is not one of them.",
                allowed.join(", ")
            ),
        )
        .field(k)),
    }
}

/// Checks a template's spec: merge fields well written, no `webhookUrl`, and every part no merge
/// field touches valid. Answers the fields it uses; errors name `<at>.<path>`.
fn check_template(state: &AppState, spec: &Value, at: &str) -> Result<Vec<String>, ApiError> {
    let bad = |path: &str, message: String| {
        let field = if path.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid template.",
            format!("{field}: {message}"),
        )
        .field(&field)
    };
    let Some(obj) = spec.as_object() else {
        return Err(bad(
            "",
            "must be a JSON object: a video spec whose strings may hold {{name}} merge fields"
                .into(),
        ));
    };
    if obj.get("webhookUrl").is_some_and(|v| !v.is_null()) {
        return Err(bad(
            "webhookUrl",
            "a template has no webhookUrl: each submission gives its own".into(),
        ));
    }
    let map = template::fields(spec).map_err(|e| bad(&e.path, e.message))?;
    let stand_in = template::stand_in(spec).map_err(|e| bad(&e.path, e.message))?;
    if let Err(e) = validate_spec(&stand_in, &state.validation) {
        if !template::caused_by_field(&map, &e.field) {
            return Err(bad(&e.field, e.message));
        }
    }
    Ok(map.names.into_iter().collect())
}

/// Fills `template` in with `values` into a spec (not yet validated): `metadata` given replaces
/// the template's. `at` names the values in errors (`mergeFields` or `mergeFields[3]`).
fn fill(
    template: &Value,
    values: &Map<String, Value>,
    metadata: Option<&Value>,
    at: &str,
) -> Result<Value, ApiError> {
    let mut spec = template::merge(template, values).map_err(|e| {
        let field = match e.field_name() {
            Some(name) => format!("{at}.{name}"),
            None => "templateId".to_string(),
        };
        let title = match e {
            MergeError::Missing { .. } => "Missing merge field.",
            _ => "Invalid merge field.",
        };
        ApiError::new(StatusCode::BAD_REQUEST, title, format!("{at}: {e}")).field(&field)
    })?;
    if let (Some(m), Some(obj)) = (metadata.filter(|m| !m.is_null()), spec.as_object_mut()) {
        obj.insert("metadata".into(), m.clone());
    }
    Ok(spec)
}

/// `mergeFields` of one submission: absent or `null` is none; else an object.
fn merge_values(v: Option<&Value>, at: &str) -> Result<Map<String, Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid merge fields.",
            format!("{at} must be an object of merge-field values, e.g. {{\"name\": \"Ada\"}}."),
        )
        .field(at)),
    }
}

/// The spec of a `{"templateId", "mergeFields", "webhookUrl", "metadata"}` submission: the
/// caller's template filled in (not yet validated). `404` for a template the caller cannot see.
pub(super) async fn resolve(
    state: &AppState,
    caller: &Caller,
    body: &Value,
) -> Result<Value, ApiError> {
    let obj = body.as_object().expect("parse_body answers objects");
    only_keys(
        obj,
        &["templateId", "mergeFields", "webhookUrl", "metadata"],
        "A submission with a templateId",
    )?;
    let Some(id) = obj.get("templateId").and_then(Value::as_str) else {
        return Err(bad_template_id());
    };
    let values = merge_values(obj.get("mergeFields"), "mergeFields")?;
    let template = owned(state, caller, id).await?;
    fill(&template.spec, &values, obj.get("metadata"), "mergeFields")
}

/// Store a template: a spec whose strings may hold `{{name}}` merge fields.
///
/// Answers `201` with its `templateId` and the merge fields it uses. Every part of the spec that
/// no merge field touches is validated now (a `400` names it); the rest when values are merged.
#[utoipa::path(post, path = "/api/templates", tag = "templates",
    request_body(content = NewTemplate, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored.", body = TemplateBody,
         headers(("Location" = String, description = "/api/templates/:templateId"))),
        (status = 409, description = "The caller has limits.max_templates_per_key templates already.", body = ErrorBody),
    ))]
async fn create_template(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(&headers, body, state.max_json_depth)?;
    let obj = body.as_object().expect("parse_body answers objects");
    only_keys(obj, &["name", "spec"], "POST /api/templates")?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= template::MAX_TEMPLATE_NAME_CHARS =>
        {
            Some(s.trim().to_string())
        }
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid template name.",
                format!(
                    "name must be a string of 1 to {} characters.",
                    template::MAX_TEMPLATE_NAME_CHARS
                ),
            )
            .field("name"))
        }
    };
    let Some(spec) = obj.get("spec") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid template.",
            "spec is required: the video spec whose strings may hold {{name}} merge fields.",
        )
        .field("spec"));
    };
    let fields = check_template(&state, spec, "spec")?;
    let record = TemplateRecord {
        id: TemplateId::new(),
        owner: caller.key_id.clone(),
        name,
        spec: spec.clone(),
        fields,
        created_at: vidbuilder_domain::job::timestamp(chrono::Utc::now()),
    };
    let max_per_owner = state.max_templates_per_key;
    let answer = TemplateBody::of(&record, false);
    let location = format!("/api/templates/{}", record.id);
    call(&state, |reply| TemplateMsg::Create {
        template: record,
        max_per_owner,
        reply,
    })
    .await?;
    let mut res = (StatusCode::CREATED, Json(answer)).into_response();
    res.headers_mut()
        .insert(header::LOCATION, location.parse().expect("ascii id"));
    Ok(res)
}

/// The caller's templates, newest first (20 unless `limit` says otherwise, at most 100), without
/// their specs, and how many there are in all.
#[utoipa::path(get, path = "/api/templates", tag = "templates",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "How many (1–100, default 20).")),
    responses(
        (status = 200, description = "The caller's templates, newest first.", body = TemplateList),
        (status = 400, description = "limit is not a whole number from 1 to 100.", body = ErrorBody),
    ))]
async fn list_templates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<
        axum::extract::Query<super::jobs::ListQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Json<TemplateList>, ApiError> {
    let limit = super::jobs::list_limit(query.map(|q| q.0.limit))?;
    let owner = caller.key_id.clone();
    let (templates, total) = call(&state, |reply| TemplateMsg::List {
        owner,
        limit,
        reply,
    })
    .await?;
    Ok(Json(TemplateList {
        templates: templates
            .iter()
            .map(|t| TemplateBody::of(t, false))
            .collect(),
        total,
    }))
}

/// A template with its spec.
#[utoipa::path(get, path = "/api/templates/{template_id}", tag = "templates",
    params(("template_id" = String, Path, description = "The template's id.")),
    responses(
        (status = 200, description = "The template.", body = TemplateBody),
        (status = 404, description = "No such template (or not the caller's).", body = ErrorBody),
    ))]
async fn get_template(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(template_id): Path<String>,
) -> Result<Json<TemplateBody>, ApiError> {
    let t = owned(&state, &caller, &template_id).await?;
    Ok(Json(TemplateBody::of(&t, true)))
}

/// Delete a template (jobs made from it are not affected).
#[utoipa::path(delete, path = "/api/templates/{template_id}", tag = "templates",
    params(("template_id" = String, Path, description = "The template's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such template (or not the caller's).", body = ErrorBody),
    ))]
async fn delete_template(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(template_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = owned(&state, &caller, &template_id).await?;
    let id = t.id.clone();
    if call(&state, |reply| TemplateMsg::Delete { id, reply }).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        // Deleted by a concurrent request in between.
        Err(not_found(&template_id))
    }
}

/// One job per set of merge-field values, in one request: `{"templateId" or "spec",
/// "webhookUrl"?, "mergeFields": [{…}, …], "metadata"?}`.
///
/// Every set is filled in and validated first, and the jobs are admitted all together or not at
/// all (a `400` names the set and field at fault; a full queue refuses the whole batch). Each job
/// has its own `jobId`, webhooks and `metadata` (with `batchId` and `batchIndex` added). With an
/// `Idempotency-Key`, the same key and body within 24 h answer the same jobs.
#[utoipa::path(post, path = "/api/batch", tag = "jobs",
    request_body(content = BatchRequestDoc, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters; the same key and body within 24 h answer the original jobs.")),
    responses(
        (status = 202, description = "Accepted: one queued job per set of mergeFields, in order.", body = BatchAccepted),
        (status = 404, description = "No such template (or not the caller's).", body = ErrorBody),
        (status = 422, description = "This Idempotency-Key was used with another body.", body = ErrorBody),
    ))]
async fn batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(&headers, body, state.max_json_depth)?;
    let obj = body.as_object().expect("parse_body answers objects");
    only_keys(
        obj,
        &[
            "templateId",
            "spec",
            "webhookUrl",
            "mergeFields",
            "metadata",
        ],
        "POST /api/batch",
    )?;
    let hook = webhook_url(&body, &state)?;
    let idem = idempotency(&headers, &body)?;
    let max = state.max_batch_jobs;
    let sets = match obj.get("mergeFields") {
        Some(Value::Array(a)) if (1..=max).contains(&a.len()) => a,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid merge fields.",
                format!("mergeFields must be a list of 1 to {max} objects (limits.max_batch_jobs), one per job."),
            )
            .field("mergeFields"))
        }
    };
    let spec_given = obj.get("spec");
    let id_given = obj.get("templateId");
    let template =
        match (id_given, spec_given) {
            (Some(Value::String(id)), None) => owned(&state, &caller, id).await?.spec,
            (None, Some(spec)) => {
                check_template(&state, spec, "spec")?;
                spec.clone()
            }
            (Some(_), None) => return Err(bad_template_id()),
            _ => return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Template required.",
                "Give exactly one of templateId (a stored template) and spec (a template inline).",
            )
            .field("templateId")),
        };
    let batch_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let mut requests = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let at = format!("mergeFields[{i}]");
        let Value::Object(values) = set else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid merge fields.",
                format!(
                    "{at} must be an object of merge-field values, e.g. {{\"name\": \"Ada\"}}."
                ),
            )
            .field(&at));
        };
        let mut spec = fill(&template, values, obj.get("metadata"), &at)?;
        let spec_obj = spec.as_object_mut().expect("templates are objects");
        let mut metadata = match spec_obj.remove("metadata") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Invalid video spec.",
                    format!("{at} makes an invalid spec: metadata must be an object"),
                )
                .field(&at))
            }
        };
        metadata.insert("batchId".into(), json!(batch_id));
        metadata.insert("batchIndex".into(), json!(i));
        spec_obj.insert("metadata".into(), Value::Object(metadata));
        let spec = validate_spec(&spec, &state.validation).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid video spec.",
                format!("{at} makes an invalid spec: {}: {}", e.field, e.message),
            )
            .with("specField", e.field.clone())
            .field(&at)
        })?;
        check_image_urls(&spec, &state.ssrf).map_err(|e| e.field(&at))?;
        check_videos(&spec, &state)
            .await
            .map_err(|e| e.field(&at))?;
        requests.push(SubmitRequest {
            spec,
            webhook_url: hook.clone(),
            owner: caller.key_id.clone(),
            idempotency: idem.as_ref().map(|k| Idempotency {
                key: format!("{}#{i}", k.key),
                body_hash: k.body_hash.clone(),
            }),
        });
    }
    let admitted = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::SubmitBatch { requests, reply },
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(super::manager_unavailable)?
    .map_err(submit_error)?;
    let replayed = admitted.iter().all(|a| a.replayed);
    // A replayed batch answers the batch id its jobs were given.
    let batch_id = admitted
        .first()
        .and_then(|a| a.snapshot.metadata.as_ref())
        .and_then(|m| m.get("batchId"))
        .and_then(Value::as_str)
        .map_or(batch_id, str::to_string);
    let jobs = admitted
        .iter()
        .map(|a| BatchJob {
            job_id: a.snapshot.job_id.to_string(),
            status_url: format!("/api/job-status/{}", a.snapshot.job_id),
            status: a.snapshot.status,
        })
        .collect();
    let mut res = (
        StatusCode::ACCEPTED,
        Json(BatchAccepted {
            success: true,
            batch_id,
            jobs,
        }),
    )
        .into_response();
    if replayed {
        res.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}
