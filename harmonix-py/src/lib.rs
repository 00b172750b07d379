//! `harmonix._harmonix`: the native module of the `harmonix` Python
//! package. It only converts between Python and `harmonix_core`: specs,
//! plans, reports and events cross as JSON text that the pure-Python layer
//! (`python/harmonix/`) turns into typed objects.
//!
//! Every long call exists twice: a blocking method that releases the GIL
//! and turns Ctrl-C into a clean cancellation, and an `*_async` method
//! returning an awaitable (`pyo3-async-runtimes` on one shared runtime,
//! rebuilt after `fork`). Both run the engine as a separate task, so a
//! cancelled call (KeyboardInterrupt, `asyncio` cancel) stops starting new
//! stacks, lets running ones finish, releases the locks and returns.

/// mimalloc: the engine allocates many small JSON values while rendering;
/// it renders about 2.5× faster than with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod runtime;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool, SessionOptions};
use harmonix_core::engine::events::Event;
use harmonix_core::engine::plan::Backoff;
use harmonix_core::engine::retained::DestroyOptions;
use harmonix_core::engine::{DeploymentPlan, EngineOptions, LockOptions};
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::spec::{self, SpecSet as CoreSpecSet};
use harmonix_core::{Error, catalog, render, schema};
use pyo3::prelude::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use runtime::{HarmonixRuntime, runtime};

fn err(e: &Error) -> PyErr {
    Python::attach(|py| errors::to_py(py, e))
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// A set of validated specs.
#[pyclass(frozen, module = "harmonix._harmonix")]
#[derive(Clone)]
struct SpecSet {
    inner: Arc<CoreSpecSet>,
}

#[pymethods]
impl SpecSet {
    /// Load and validate spec files (YAML). Raises ValidationError with
    /// every problem of the first invalid file.
    #[staticmethod]
    fn from_paths(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Self> {
        let registry = Registry::builtin();
        py.detach(|| CoreSpecSet::load(&paths, &registry))
            .map(|s| Self { inner: Arc::new(s) })
            .map_err(|e| err(&e.into()))
    }

    /// Parse and validate one spec from YAML text.
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<string>"))]
    fn from_yaml(text: &str, origin: &str) -> PyResult<Self> {
        let registry = Registry::builtin();
        let file = spec::parse_str(text, origin).map_err(|e| err(&e.into()))?;
        let valid = spec::validate(file, &registry, origin).map_err(|e| err(&e.into()))?;
        let mut set = CoreSpecSet::new();
        set.push(origin, valid);
        Ok(Self {
            inner: Arc::new(set),
        })
    }

    /// Validate one spec given as JSON text (what a dict serializes to).
    #[staticmethod]
    #[pyo3(signature = (text, origin = "<dict>"))]
    fn from_json(text: &str, origin: &str) -> PyResult<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            errors::ValidationError::new_err(format!("{origin}: not a JSON object: {e}"))
        })?;
        let registry = Registry::builtin();
        let file = spec::from_value(&value, origin).map_err(|e| err(&e.into()))?;
        let valid = spec::validate(file, &registry, origin).map_err(|e| err(&e.into()))?;
        let mut set = CoreSpecSet::new();
        set.push(origin, valid);
        Ok(Self {
            inner: Arc::new(set),
        })
    }

    /// Several sets as one.
    #[staticmethod]
    fn concat(sets: Vec<Bound<'_, SpecSet>>) -> Self {
        let mut all = CoreSpecSet::new();
        for s in sets {
            for (origin, spec) in s.get().inner.iter() {
                all.push(origin, spec.clone());
            }
        }
        Self {
            inner: Arc::new(all),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Origins of the specs, in order.
    fn origins(&self) -> Vec<String> {
        self.inner.iter().map(|(o, _)| o.to_owned()).collect()
    }

    /// The specs as JSON (a list of `{origin, spec}`).
    fn to_json(&self) -> String {
        json_text(&self.inner.to_embedded())
    }

    /// Every stack as JSON: name, provider, account, region, parameters,
    /// tags, dependsOn, capabilities, hash and the template.
    fn stacks_json(&self) -> PyResult<String> {
        let stacks = self
            .inner
            .stacks(&Registry::builtin())
            .map_err(|e| err(&e.into()))?;
        let list: Vec<serde_json::Value> = stacks
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
        Ok(json_text(&list))
    }

    /// Write every stack's template and parameters into `out_dir`; the
    /// files written.
    fn render(&self, py: Python<'_>, out_dir: PathBuf) -> PyResult<Vec<String>> {
        let registry = Registry::builtin();
        let stacks = self.inner.stacks(&registry).map_err(|e| err(&e.into()))?;
        py.detach(|| render::write_stacks(&stacks, &out_dir))
            .map(|files| files.iter().map(|p| p.display().to_string()).collect())
            .map_err(|e| err(&e.into()))
    }

    /// The catalog entities before deployment (derived names only), JSON.
    fn entities_json(&self) -> PyResult<String> {
        let registry = Registry::builtin();
        let mut all = Vec::new();
        for (_, s) in self.inner.iter() {
            all.extend(
                catalog::entities(s, &registry, &StackOutputs::new())
                    .map_err(|e| err(&e.into()))?,
            );
        }
        Ok(json_text(&all))
    }
}

/// A reviewed plan.
#[pyclass(frozen, module = "harmonix._harmonix")]
#[derive(Clone)]
struct Plan {
    inner: Arc<DeploymentPlan>,
}

#[pymethods]
impl Plan {
    /// Read a plan file's text (checks its format and content hash).
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        DeploymentPlan::from_json(text)
            .map(|p| Self { inner: Arc::new(p) })
            .map_err(|e| err(&e))
    }

    /// Read a plan file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        DeploymentPlan::load(&path)
            .map(|p| Self { inner: Arc::new(p) })
            .map_err(|e| err(&e))
    }

    /// The plan file's text.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Write the plan file atomically.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(&path).map_err(|e| err(&e))
    }

    /// A Terraform-like diff; ANSI colors with `color`.
    #[pyo3(signature = (color = false))]
    fn diff(&self, color: bool) -> String {
        self.inner.render_diff(color)
    }

    /// Whether nothing is to be done.
    fn is_noop(&self) -> bool {
        self.inner.is_noop()
    }

    /// `deploy` or `destroy`.
    fn kind(&self) -> String {
        self.inner.kind.to_string()
    }

    /// The content hash.
    fn content_hash(&self) -> String {
        self.inner.content_hash.clone()
    }

    /// The summary counts, JSON.
    fn summary_json(&self) -> String {
        json_text(&self.inner.summary())
    }

    /// The per-target plans, JSON.
    fn targets_json(&self) -> String {
        json_text(&self.inner.targets)
    }
}

/// The engine: AWS access options and engine options.
#[pyclass(frozen, module = "harmonix._harmonix")]
struct Engine {
    inner: harmonix_core::engine::Engine,
}

/// Run `fut` (the engine) as its own task and wait for it with the GIL
/// released; Ctrl-C cancels it cleanly (no new stack starts, running ones
/// finish, locks are released) and then raises KeyboardInterrupt. A second
/// Ctrl-C stops waiting at once.
fn block_on<T, F>(py: Python<'_>, cancel: &CancellationToken, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let mut handle = rt.spawn(fut);
    let mut interrupted: Option<PyErr> = None;
    loop {
        let done = py.detach(|| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), &mut handle).await
            })
        });
        match done {
            Ok(joined) => {
                if let Some(e) = interrupted {
                    return Err(e);
                }
                return match joined {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(errors::to_py(py, &e)),
                    Err(join) => Err(errors::HarmonixError::new_err(format!(
                        "the Harmonix task failed: {join}"
                    ))),
                };
            }
            Err(_) => {
                if let Err(e) = py.check_signals() {
                    if interrupted.is_some() {
                        handle.abort();
                        return Err(e);
                    }
                    // Stop cleanly, then raise the interrupt.
                    cancel.cancel();
                    interrupted = Some(e);
                }
            }
        }
    }
}

/// The same as an awaitable: the engine runs as its own task; cancelling
/// the awaitable cancels the engine's token (clean stop, see
/// [`block_on`]).
fn awaitable<'py, T, F>(
    py: Python<'py>,
    cancel: CancellationToken,
    fut: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime()?;
    let handle = rt.spawn(fut);
    pyo3_async_runtimes::generic::future_into_py::<HarmonixRuntime, _, T>(py, async move {
        // Dropped (the awaitable was cancelled): cancel the engine.
        let guard = cancel.drop_guard();
        let joined = handle.await;
        drop(guard.disarm());
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(err(&e)),
            Err(join) => Err(errors::HarmonixError::new_err(format!(
                "the Harmonix task failed: {join}"
            ))),
        }
    })
}

/// An event sink calling `on_event(json_text)`; exceptions raised by the
/// callback are reported as unraisable, never stop the engine.
fn sink(on_event: Option<Py<PyAny>>) -> impl Fn(&Event) + Send + Sync + 'static {
    move |e: &Event| {
        if let Some(cb) = &on_event {
            let text = json_text(e);
            Python::attach(|py| {
                if let Err(err) = cb.call1(py, (text,)) {
                    err.write_unraisable(py, Some(cb.bind(py)));
                }
            });
        }
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (
        *,
        region = None,
        endpoint_url = None,
        pipeline_role = None,
        external_id = None,
        source_identity = None,
        session_duration = 3600,
        caller = None,
        max_attempts = None,
        concurrency = 4,
        api_rate = 10.0,
        api_burst = 20,
        lock = true,
        lock_lease = 300.0,
        lock_table = None,
        audit = true,
        timeout = 3600.0,
        poll_interval = (0.5, 10.0),
        command = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region: Option<String>,
        endpoint_url: Option<String>,
        pipeline_role: Option<String>,
        external_id: Option<String>,
        source_identity: Option<String>,
        session_duration: u64,
        caller: Option<String>,
        max_attempts: Option<u32>,
        concurrency: usize,
        api_rate: f64,
        api_burst: u32,
        lock: bool,
        lock_lease: f64,
        lock_table: Option<String>,
        audit: bool,
        timeout: f64,
        poll_interval: (f64, f64),
        command: Option<String>,
    ) -> PyResult<Self> {
        let seconds = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1e9 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(errors::InvalidInputError::new_err(format!(
                    "{name} = {v}: a number of seconds above 0"
                )))
            }
        };
        let aws = AwsOptions {
            endpoint_url,
            region,
            pipeline_role,
            session: SessionOptions {
                duration: Duration::from_secs(session_duration),
                external_id,
                source_identity,
            },
            caller,
            max_attempts,
            api_budget: ApiBudget {
                rate: api_rate,
                burst: api_burst,
            },
        };
        let mut opts = EngineOptions {
            concurrency: concurrency.max(1),
            audit,
            command: command.unwrap_or_else(|| "harmonix (python)".to_owned()),
            lock: LockOptions {
                enabled: lock,
                lease: seconds("lock_lease", lock_lease)?,
                table: lock_table.unwrap_or_else(|| LockOptions::default().table),
                ..LockOptions::default()
            },
            ..EngineOptions::default()
        };
        let poll = Backoff {
            initial: seconds("poll_interval[0]", poll_interval.0)?,
            max: seconds("poll_interval[1]", poll_interval.1)?,
        };
        opts.plan.poll = poll;
        opts.apply.poll = poll;
        opts.apply.timeout = seconds("timeout", timeout)?;
        let rt = runtime()?;
        let pool = py
            .detach(|| rt.block_on(ClientPool::load(aws)))
            .map_err(|e| err(&e.into()))?;
        Ok(Self {
            inner: harmonix_core::engine::Engine::new(pool, Registry::builtin(), opts),
        })
    }

    /// Plan (blocking). `destroy` plans the deletion instead;
    /// `delete_data` deletes what the templates keep too (production
    /// environments also need `delete_production_data`).
    #[pyo3(signature = (specs, *, destroy = false, delete_data = false, delete_production_data = false, on_event = None))]
    fn plan(
        &self,
        py: Python<'_>,
        specs: &SpecSet,
        destroy: bool,
        delete_data: bool,
        delete_production_data: bool,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Plan> {
        let cancel = CancellationToken::new();
        let fut = plan_future(
            self.inner.clone(),
            Arc::clone(&specs.inner),
            destroy_options(destroy, delete_data, delete_production_data),
            on_event,
        );
        block_on(py, &cancel, fut)
    }

    /// Plan (awaitable).
    #[pyo3(signature = (specs, *, destroy = false, delete_data = false, delete_production_data = false, on_event = None))]
    fn plan_async<'py>(
        &self,
        py: Python<'py>,
        specs: &SpecSet,
        destroy: bool,
        delete_data: bool,
        delete_production_data: bool,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = plan_future(
            self.inner.clone(),
            Arc::clone(&specs.inner),
            destroy_options(destroy, delete_data, delete_production_data),
            on_event,
        );
        awaitable(py, CancellationToken::new(), fut)
    }

    /// Apply a reviewed plan (blocking); the report as JSON.
    #[pyo3(signature = (plan, *, catalog_path = None, on_event = None))]
    fn apply(
        &self,
        py: Python<'_>,
        plan: &Plan,
        catalog_path: Option<PathBuf>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let cancel = CancellationToken::new();
        let engine = self.inner.with_cancel(cancel.clone());
        let fut = apply_future(engine, Arc::clone(&plan.inner), catalog_path, on_event);
        block_on(py, &cancel, fut)
    }

    /// Apply a reviewed plan (awaitable); the report as JSON.
    #[pyo3(signature = (plan, *, catalog_path = None, on_event = None))]
    fn apply_async<'py>(
        &self,
        py: Python<'py>,
        plan: &Plan,
        catalog_path: Option<PathBuf>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cancel = CancellationToken::new();
        let engine = self.inner.with_cancel(cancel.clone());
        let fut = apply_future(engine, Arc::clone(&plan.inner), catalog_path, on_event);
        awaitable(py, cancel, fut)
    }

    /// Delete the change sets of a plan that will not be applied.
    fn discard(&self, py: Python<'_>, plan: &Plan) -> PyResult<usize> {
        let engine = self.inner.clone();
        let plan = Arc::clone(&plan.inner);
        block_on(py, &CancellationToken::new(), async move {
            engine.discard(&plan).await
        })
    }

    /// Each stack's state and drift (blocking), JSON.
    fn status(&self, py: Python<'_>, specs: &SpecSet) -> PyResult<String> {
        let fut = status_future(self.inner.clone(), Arc::clone(&specs.inner));
        block_on(py, &CancellationToken::new(), fut)
    }

    /// Each stack's state and drift (awaitable), JSON.
    fn status_async<'py>(&self, py: Python<'py>, specs: &SpecSet) -> PyResult<Bound<'py, PyAny>> {
        let fut = status_future(self.inner.clone(), Arc::clone(&specs.inner));
        awaitable(py, CancellationToken::new(), fut)
    }

    /// Entities of the deployed environments, written to `path` when
    /// given (blocking), JSON `{entities, catalog}`.
    #[pyo3(signature = (specs, path = None, *, on_event = None))]
    fn write_catalog(
        &self,
        py: Python<'_>,
        specs: &SpecSet,
        path: Option<PathBuf>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let fut = catalog_future(self.inner.clone(), Arc::clone(&specs.inner), path, on_event);
        block_on(py, &CancellationToken::new(), fut)
    }

    /// The same, awaitable.
    #[pyo3(signature = (specs, path = None, *, on_event = None))]
    fn write_catalog_async<'py>(
        &self,
        py: Python<'py>,
        specs: &SpecSet,
        path: Option<PathBuf>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = catalog_future(self.inner.clone(), Arc::clone(&specs.inner), path, on_event);
        awaitable(py, CancellationToken::new(), fut)
    }

    /// Create the lock tables of every target account/region; the
    /// `account/region` pairs.
    fn bootstrap(&self, py: Python<'_>, specs: &SpecSet) -> PyResult<Vec<String>> {
        let engine = self.inner.clone();
        let specs = Arc::clone(&specs.inner);
        block_on(py, &CancellationToken::new(), async move {
            engine.bootstrap(&specs).await
        })
    }

    /// AWS requests sent so far, by operation.
    fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.pool().request_counts()
    }
}

/// A destroy's options; `None` for a deploy.
fn destroy_options(
    destroy: bool,
    delete_data: bool,
    delete_production_data: bool,
) -> Option<DestroyOptions> {
    destroy.then_some(DestroyOptions {
        delete_data,
        delete_production_data,
    })
}

async fn plan_future(
    engine: harmonix_core::engine::Engine,
    specs: Arc<CoreSpecSet>,
    destroy: Option<DestroyOptions>,
    on_event: Option<Py<PyAny>>,
) -> Result<Plan, Error> {
    let sink = sink(on_event);
    let plan = match destroy {
        Some(d) => engine.plan_destroy_with(&specs, d, &sink).await?,
        None => engine.plan(&specs, &sink).await?,
    };
    Ok(Plan {
        inner: Arc::new(plan),
    })
}

async fn apply_future(
    engine: harmonix_core::engine::Engine,
    plan: Arc<DeploymentPlan>,
    catalog_path: Option<PathBuf>,
    on_event: Option<Py<PyAny>>,
) -> Result<String, Error> {
    let sink = sink(on_event);
    let report = engine.apply(&plan, catalog_path.as_deref(), &sink).await?;
    Ok(json_text(&json!({
        "succeeded": report.succeeded(),
        "report": report,
    })))
}

async fn status_future(
    engine: harmonix_core::engine::Engine,
    specs: Arc<CoreSpecSet>,
) -> Result<String, Error> {
    Ok(json_text(&engine.status(&specs).await?))
}

async fn catalog_future(
    engine: harmonix_core::engine::Engine,
    specs: Arc<CoreSpecSet>,
    path: Option<PathBuf>,
    on_event: Option<Py<PyAny>>,
) -> Result<String, Error> {
    let sink = sink(on_event);
    let (entities, written) = engine.catalog(&specs, path.as_deref(), &sink).await?;
    Ok(json_text(
        &json!({ "entities": entities, "catalog": written }),
    ))
}

/// The JSON Schema of the spec format.
#[pyfunction]
fn schema_json() -> String {
    schema::spec_schema_json()
}

/// The Harmonix version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Validate a spec from YAML text without raising: the problems as
/// `(path, value, message)`; empty when valid. Unreadable YAML is one
/// problem at path "".
#[pyfunction]
#[pyo3(signature = (text, origin = "<string>"))]
fn problems(text: &str, origin: &str) -> Vec<(String, Option<String>, String)> {
    let registry = Registry::builtin();
    let result = spec::parse_str(text, origin).and_then(|f| spec::validate(f, &registry, origin));
    match result {
        Ok(_) => Vec::new(),
        Err(e) => match e.validation_errors() {
            Some(list) => list
                .iter()
                .map(|x| (x.path.clone(), x.value.clone(), x.message.clone()))
                .collect(),
            None => vec![(String::new(), None, e.to_string())],
        },
    }
}

#[pymodule]
fn _harmonix(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<SpecSet>()?;
    m.add_class::<Plan>()?;
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(schema_json, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(problems, m)?)?;
    Ok(())
}
