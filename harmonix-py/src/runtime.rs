//! One tokio runtime for the whole Python process, safe after `fork`.
//!
//! A forked child inherits the runtime's memory but none of its worker
//! threads, so the parent's runtime cannot run anything there. The runtime
//! is therefore keyed by process id: the first use in a new process builds
//! a fresh one (the parent's copy is leaked, never dropped: dropping it
//! would wait for threads that do not exist in the child).
//!
//! [`HarmonixRuntime`] plugs that runtime into `pyo3-async-runtimes`
//! (its generic API), so `async` methods run on it too.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use tokio::runtime::{Builder, Runtime};
use tokio::task;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime of this process (built on first use, again after a fork).
pub fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt);
    }
    let rt = Builder::new_multi_thread()
        .enable_all()
        .thread_name("harmonix")
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start the Harmonix runtime: {e}"
            ))
        })?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

/// [`runtime`] for `pyo3_async_runtimes::generic`.
pub struct HarmonixRuntime;

impl GenericRuntime for HarmonixRuntime {
    type JoinError = task::JoinError;
    type JoinHandle = task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match runtime() {
            Ok(rt) => rt.spawn(fut),
            // Only when no runtime can be built at all; the caller's
            // `future_into_py` already built one, so this is unreachable
            // in practice. Run on the current runtime if there is one.
            Err(_) => tokio::spawn(fut),
        }
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        match runtime() {
            Ok(rt) => rt.spawn_blocking(f),
            Err(_) => tokio::task::spawn_blocking(f),
        }
    }
}

impl ContextExt for HarmonixRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}
