//! The native addon of `@harmonix/node`. It only converts between
//! JavaScript and `harmonix_core`: specs and plans cross as JSON text, and
//! the TypeScript layer (`ts/index.ts`) turns them into typed objects.
//!
//! - Long calls return Promises and run on one shared tokio runtime (the
//!   addon's); the event loop is never blocked.
//! - Progress goes to an `onEvent` thread-safe function, called
//!   non-blocking with one JSON event per call.
//! - A [`CancelToken`] (the TypeScript layer connects an `AbortSignal` to
//!   it) stops an apply cleanly: no new stack starts, running ones finish,
//!   locks are released, then the Promise rejects with `HARMONIX_CANCELLED`.
//! - Errors reject with a JS `Error` whose `code` is the stable Harmonix
//!   code (`HARMONIX_VALIDATION`, `HARMONIX_PLAN_STALE`, …) and whose
//!   message is a JSON object `{message, code, stack, errors, holder, …}`
//!   that the TypeScript layer unpacks into structured fields.

/// mimalloc: the engine allocates many small JSON values while rendering;
/// it renders about 2.5× faster than with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool, SessionOptions};
use harmonix_core::engine::events::Event;
use harmonix_core::engine::lock::LockError;
use harmonix_core::engine::plan::Backoff;
use harmonix_core::engine::{DeploymentPlan, EngineOptions as CoreEngineOptions, LockOptions};
use harmonix_core::error::codes;
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::spec::{self, EmbeddedSpec, SpecSet};
use harmonix_core::{Error, catalog, error_chain, render, schema};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A JS error with the Harmonix code and a JSON message of details.
fn js_error(e: &Error) -> napi::Error {
    let mut details = json!({
        "message": error_chain(e),
        "code": e.code(),
        "stack": e.stack(),
    });
    if let Some(errors) = e.validation_errors() {
        details["errors"] = json!(
            errors
                .iter()
                .map(|x| json!({"path": x.path, "value": x.value, "message": x.message}))
                .collect::<Vec<_>>()
        );
    }
    if let Error::Lock(LockError::Held {
        lock_id,
        holder,
        expires_at,
    }) = e
    {
        details["lockId"] = json!(lock_id);
        details["holder"] = json!(holder.to_string());
        details["expiresAt"] = json!(harmonix_core::engine::audit::rfc3339(*expires_at));
    }
    napi::Error::new(Status::GenericFailure, details.to_string())
}

fn input_error(message: String) -> napi::Error {
    let details = json!({"message": message, "code": codes::INVALID_INPUT});
    napi::Error::new(Status::GenericFailure, details.to_string())
}

fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn registry() -> Registry {
    Registry::builtin()
}

/// Specs from their JSON form (what the `specsFrom*` functions return).
fn specs_of(text: &str) -> napi::Result<SpecSet> {
    let embedded: Vec<EmbeddedSpec> =
        serde_json::from_str(text).map_err(|e| input_error(format!("not a specs value: {e}")))?;
    SpecSet::from_embedded(&embedded, &registry()).map_err(|e| js_error(&e.into()))
}

fn plan_of(text: &str) -> napi::Result<DeploymentPlan> {
    DeploymentPlan::from_json(text).map_err(|e| js_error(&e))
}

/// One validation problem.
#[napi(object)]
#[derive(Debug)]
pub struct Issue {
    /// Field path, e.g. `providers[0].vpc.cidr` (empty: the whole input).
    pub path: String,
    /// The value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Every problem of a spec given as YAML text; empty when valid.
#[napi]
pub fn problems(text: String, origin: Option<String>) -> Vec<Issue> {
    let origin = origin.unwrap_or_else(|| "<string>".to_owned());
    let result =
        spec::parse_str(&text, &origin).and_then(|f| spec::validate(f, &registry(), &origin));
    issues_of(result.err())
}

/// Every problem of a spec given as JSON text (an object); empty when valid.
#[napi]
pub fn problems_json(text: String, origin: Option<String>) -> Vec<Issue> {
    let origin = origin.unwrap_or_else(|| "<object>".to_owned());
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return vec![Issue {
                path: String::new(),
                value: None,
                message: format!("not JSON: {e}"),
            }];
        }
    };
    let result =
        spec::from_value(&value, &origin).and_then(|f| spec::validate(f, &registry(), &origin));
    issues_of(result.err())
}

fn issues_of(err: Option<spec::SpecError>) -> Vec<Issue> {
    match err {
        None => Vec::new(),
        Some(e) => match e.validation_errors() {
            Some(list) => list
                .iter()
                .map(|x| Issue {
                    path: x.path.clone(),
                    value: x.value.clone(),
                    message: x.message.clone(),
                })
                .collect(),
            None => vec![Issue {
                path: String::new(),
                value: None,
                message: e.to_string(),
            }],
        },
    }
}

/// Load and validate spec files; the specs' JSON form.
#[napi]
pub fn specs_from_paths(paths: Vec<String>) -> napi::Result<String> {
    SpecSet::load(&paths, &registry())
        .map(|s| to_text(&s.to_embedded()))
        .map_err(|e| js_error(&e.into()))
}

/// Parse and validate a spec from YAML text; the specs' JSON form.
#[napi]
pub fn specs_from_yaml(text: String, origin: Option<String>) -> napi::Result<String> {
    let origin = origin.unwrap_or_else(|| "<string>".to_owned());
    let file = spec::parse_str(&text, &origin).map_err(|e| js_error(&e.into()))?;
    let valid = spec::validate(file, &registry(), &origin).map_err(|e| js_error(&e.into()))?;
    let mut set = SpecSet::new();
    set.push(origin, valid);
    Ok(to_text(&set.to_embedded()))
}

/// Validate a spec given as JSON text (an object); the specs' JSON form.
#[napi]
pub fn specs_from_json(text: String, origin: Option<String>) -> napi::Result<String> {
    let origin = origin.unwrap_or_else(|| "<object>".to_owned());
    let value: Value =
        serde_json::from_str(&text).map_err(|e| input_error(format!("{origin}: not JSON: {e}")))?;
    let file = spec::from_value(&value, &origin).map_err(|e| js_error(&e.into()))?;
    let valid = spec::validate(file, &registry(), &origin).map_err(|e| js_error(&e.into()))?;
    let mut set = SpecSet::new();
    set.push(origin, valid);
    Ok(to_text(&set.to_embedded()))
}

/// Every stack of the specs as JSON (with its template and hash).
#[napi]
pub fn specs_stacks(specs: String) -> napi::Result<String> {
    let set = specs_of(&specs)?;
    let stacks = set.stacks(&registry()).map_err(|e| js_error(&e.into()))?;
    let list: Vec<Value> = stacks
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("hash".into(), json!(s.content_hash()));
                o.insert(
                    "template".into(),
                    serde_json::from_str(&s.template.to_json()).unwrap_or_default(),
                );
            }
            v
        })
        .collect();
    Ok(to_text(&list))
}

/// Write every stack's template and parameters into `outDir`; the files.
#[napi(ts_return_type = "Promise<Array<string>>")]
pub fn specs_render(specs: String, out_dir: String) -> AsyncTask<RenderTask> {
    AsyncTask::new(RenderTask { specs, out_dir })
}

/// [`specs_render`] on the libuv pool (it writes files).
#[derive(Debug)]
pub struct RenderTask {
    specs: String,
    out_dir: String,
}

impl Task for RenderTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let set = specs_of(&self.specs)?;
        let stacks = set.stacks(&registry()).map_err(|e| js_error(&e.into()))?;
        render::write_stacks(&stacks, &PathBuf::from(&self.out_dir))
            .map(|files| files.iter().map(|p| p.display().to_string()).collect())
            .map_err(|e| js_error(&e.into()))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}

/// The catalog entities before deployment, as JSON.
#[napi]
pub fn specs_entities(specs: String) -> napi::Result<String> {
    let set = specs_of(&specs)?;
    let mut all = Vec::new();
    for (_, s) in set.iter() {
        all.extend(
            catalog::entities(s, &registry(), &StackOutputs::new())
                .map_err(|e| js_error(&e.into()))?,
        );
    }
    Ok(to_text(&all))
}

/// The JSON Schema of the spec format.
#[napi]
pub fn schema_json() -> String {
    schema::spec_schema_json()
}

/// The Harmonix version.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Check a plan file's text (format and content hash); the same text.
#[napi]
pub fn plan_check(text: String) -> napi::Result<String> {
    plan_of(&text).map(|p| p.to_json())
}

/// A Terraform-like diff of a plan.
#[napi]
pub fn plan_diff(text: String, color: Option<bool>) -> napi::Result<String> {
    plan_of(&text).map(|p| p.render_diff(color.unwrap_or(false)))
}

/// A plan's summary counts, JSON.
#[napi]
pub fn plan_summary(text: String) -> napi::Result<String> {
    plan_of(&text).map(|p| to_text(&json!({"summary": p.summary(), "noop": p.is_noop()})))
}

/// Cancels one long call (an `AbortSignal` drives it from TypeScript).
#[napi]
#[derive(Debug)]
pub struct CancelToken {
    inner: CancellationToken,
}

#[napi]
impl CancelToken {
    /// A token not yet cancelled.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            inner: CancellationToken::new(),
        }
    }

    /// Cancel: the call stops starting new work and finishes cleanly.
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether it was cancelled.
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// Options of an engine. Every field is optional.
#[napi(object)]
#[derive(Default)]
pub struct EngineOptions {
    /// Region of the base credentials (default: `AWS_REGION` / profile).
    pub region: Option<String>,
    /// Endpoint for every AWS service, e.g. a local emulator (default:
    /// `AWS_ENDPOINT_URL` / the real endpoints).
    pub endpoint_url: Option<String>,
    /// Role assumed before each environment's `environmentRole`.
    pub pipeline_role: Option<String>,
    /// External id for the environment role (a secret: never shown).
    pub external_id: Option<String>,
    /// Source identity of the role sessions.
    pub source_identity: Option<String>,
    /// Role session length in seconds (900 to 43200; default 3600).
    pub session_duration_seconds: Option<u32>,
    /// Who runs Harmonix, in session names and audit records.
    pub caller: Option<String>,
    /// Attempts per AWS request (default: the standard configuration).
    pub max_attempts: Option<u32>,
    /// Stacks planned or executed at once per target (default 4).
    pub concurrency: Option<u32>,
    /// AWS requests per second per account/region (default 10).
    pub api_rate: Option<f64>,
    /// Requests allowed at once before the rate applies (default 20).
    pub api_burst: Option<u32>,
    /// Take the environment lock (default true).
    pub lock: Option<bool>,
    /// Lease of the lock in seconds (default 300).
    pub lock_lease_seconds: Option<f64>,
    /// Lock table name (default `harmonix-locks`).
    pub lock_table: Option<String>,
    /// Write audit records (default true).
    pub audit: Option<bool>,
    /// Limit of an apply in seconds (default 3600).
    pub timeout_seconds: Option<f64>,
    /// First and largest delay between status polls, seconds (default [0.5, 10]).
    pub poll_interval_seconds: Option<Vec<f64>>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("pipeline_role", &self.pipeline_role)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "** redacted **"),
            )
            .field("caller", &self.caller)
            .field("concurrency", &self.concurrency)
            .field("api_rate", &self.api_rate)
            .field("api_burst", &self.api_burst)
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

fn seconds(name: &str, v: f64) -> napi::Result<Duration> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(input_error(format!(
            "{name} = {v}: a number of seconds above 0"
        )))
    }
}

/// The engine.
#[napi]
#[derive(Debug)]
pub struct Engine {
    inner: harmonix_core::engine::Engine,
}

/// The progress callback: `(event: string) => void`, called non-blocking.
type OnEvent = ThreadsafeFunction<String, (), String, Status, false>;

fn sink(on_event: Option<Arc<OnEvent>>) -> impl Fn(&Event) + Send + Sync + 'static {
    move |e: &Event| {
        if let Some(cb) = &on_event {
            cb.call(to_text(e), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

#[napi]
impl Engine {
    /// Make an engine (reads the standard AWS configuration without
    /// blocking the event loop).
    #[napi(factory)]
    pub async fn create(options: Option<EngineOptions>) -> napi::Result<Engine> {
        let o = options.unwrap_or_default();
        let aws = AwsOptions {
            endpoint_url: o.endpoint_url,
            region: o.region,
            pipeline_role: o.pipeline_role,
            session: SessionOptions {
                duration: Duration::from_secs(u64::from(
                    o.session_duration_seconds.unwrap_or(3600),
                )),
                external_id: o.external_id,
                source_identity: o.source_identity,
            },
            caller: o.caller,
            max_attempts: o.max_attempts,
            api_budget: ApiBudget {
                rate: o.api_rate.unwrap_or(10.0),
                burst: o.api_burst.unwrap_or(20),
            },
        };
        let mut opts = CoreEngineOptions {
            concurrency: o.concurrency.unwrap_or(4).max(1) as usize,
            audit: o.audit.unwrap_or(true),
            command: "harmonix (node)".to_owned(),
            lock: LockOptions {
                enabled: o.lock.unwrap_or(true),
                lease: seconds("lockLeaseSeconds", o.lock_lease_seconds.unwrap_or(300.0))?,
                table: o.lock_table.unwrap_or_else(|| LockOptions::default().table),
                ..LockOptions::default()
            },
            ..CoreEngineOptions::default()
        };
        let poll = o.poll_interval_seconds.unwrap_or_else(|| vec![0.5, 10.0]);
        let backoff = Backoff {
            initial: seconds(
                "pollIntervalSeconds[0]",
                poll.first().copied().unwrap_or(0.5),
            )?,
            max: seconds(
                "pollIntervalSeconds[1]",
                poll.get(1).copied().unwrap_or(10.0),
            )?,
        };
        opts.plan.poll = backoff;
        opts.apply.poll = backoff;
        opts.apply.timeout = seconds("timeoutSeconds", o.timeout_seconds.unwrap_or(3600.0))?;
        let pool = ClientPool::load(aws)
            .await
            .map_err(|e| js_error(&e.into()))?;
        Ok(Engine {
            inner: harmonix_core::engine::Engine::new(pool, registry(), opts),
        })
    }

    /// Plan; the plan file's text. `destroy` plans the deletion instead;
    /// `delete_data` deletes what the templates keep too (production
    /// environments also need `delete_production_data`).
    #[napi]
    pub async fn plan(
        &self,
        specs: String,
        destroy: Option<bool>,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_event: Option<
            Arc<OnEvent>,
        >,
        delete_data: Option<bool>,
        delete_production_data: Option<bool>,
    ) -> napi::Result<String> {
        let set = specs_of(&specs)?;
        let sink = sink(on_event);
        let plan = if destroy.unwrap_or(false) {
            let data = harmonix_core::engine::retained::DestroyOptions {
                delete_data: delete_data.unwrap_or(false),
                delete_production_data: delete_production_data.unwrap_or(false),
            };
            self.inner.plan_destroy_with(&set, data, &sink).await
        } else {
            self.inner.plan(&set, &sink).await
        };
        plan.map(|p| p.to_json()).map_err(|e| js_error(&e))
    }

    /// Apply a plan (its file text); the report as JSON. `token` cancels
    /// (cleanly: running stacks finish, locks are released).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn apply<'env>(
        &self,
        env: &'env Env,
        plan: String,
        catalog_path: Option<String>,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_event: Option<
            Arc<OnEvent>,
        >,
        token: Option<&CancelToken>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let cancel = token.map(|t| t.inner.clone()).unwrap_or_default();
        let engine = self.inner.with_cancel(cancel);
        env.spawn_future(async move {
            let plan = plan_of(&plan)?;
            let sink = sink(on_event);
            let report = engine
                .apply(
                    &plan,
                    catalog_path.as_deref().map(std::path::Path::new),
                    &sink,
                )
                .await
                .map_err(|e| js_error(&e))?;
            Ok(to_text(
                &json!({"succeeded": report.succeeded(), "report": report}),
            ))
        })
    }

    /// Delete the change sets of a plan that will not be applied.
    #[napi]
    pub async fn discard(&self, plan: String) -> napi::Result<u32> {
        let plan = plan_of(&plan)?;
        self.inner
            .discard(&plan)
            .await
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(|e| js_error(&e))
    }

    /// Each stack's state and drift, JSON.
    #[napi]
    pub async fn status(&self, specs: String) -> napi::Result<String> {
        let set = specs_of(&specs)?;
        self.inner
            .status(&set)
            .await
            .map(|s| to_text(&s))
            .map_err(|e| js_error(&e))
    }

    /// The deployed environments' entities, written to `path` when given;
    /// JSON `{entities, catalog}`.
    #[napi]
    pub async fn write_catalog(
        &self,
        specs: String,
        path: Option<String>,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_event: Option<
            Arc<OnEvent>,
        >,
    ) -> napi::Result<String> {
        let set = specs_of(&specs)?;
        let sink = sink(on_event);
        let (entities, written) = self
            .inner
            .catalog(&set, path.as_deref().map(std::path::Path::new), &sink)
            .await
            .map_err(|e| js_error(&e))?;
        Ok(to_text(&json!({"entities": entities, "catalog": written})))
    }

    /// Create the lock table in every target account/region.
    #[napi]
    pub async fn bootstrap(&self, specs: String) -> napi::Result<Vec<String>> {
        let set = specs_of(&specs)?;
        self.inner.bootstrap(&set).await.map_err(|e| js_error(&e))
    }

    /// Every stack's outputs (completed from its resources where
    /// CloudFormation lists none), JSON.
    #[napi]
    pub async fn outputs(&self, specs: String) -> napi::Result<String> {
        let set = specs_of(&specs)?;
        self.inner
            .outputs(&set)
            .await
            .map(|s| to_text(&s))
            .map_err(|e| js_error(&e))
    }

    /// The newest `limit` audit records of every provider, newest first,
    /// JSON.
    #[napi]
    pub async fn audit_items(&self, specs: String, limit: u32) -> napi::Result<String> {
        let set = specs_of(&specs)?;
        self.inner
            .audit_items(&set, limit as usize)
            .await
            .map(|s| to_text(&s))
            .map_err(|e| js_error(&e))
    }

    /// AWS requests sent so far, by operation (JSON).
    #[napi]
    pub fn request_counts(&self) -> String {
        to_text(&self.inner.pool().request_counts())
    }
}
