//! The Python exception hierarchy, mapped from `harmonix_core::Error` by
//! its stable code.
//!
//! ```text
//! HarmonixError                (.code, .stack)
//! ├── ValidationError          (.errors: list[(path, value, message)], .origin)
//! ├── InvalidInputError
//! ├── InvalidPlanError
//! ├── PlanStaleError
//! ├── LockHeldError            (.holder, .lock_id, .expires_at)
//! ├── StackFailedError         (.stack, .reason, .report)
//! ├── StackNotReadyError
//! ├── AwsError
//! │   └── CredentialsError
//! ├── WaitTimeoutError
//! ├── CatalogError
//! ├── FileError
//! └── CancelledError
//! ```

use harmonix_core::engine::lock::LockError;
use harmonix_core::error::codes;
use harmonix_core::{Error, error_chain};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    harmonix,
    HarmonixError,
    PyException,
    "Base class of every Harmonix error. `code` is the stable error code (e.g. `HARMONIX_PLAN_STALE`), `stack` the stack concerned or None."
);
create_exception!(
    harmonix,
    ValidationError,
    HarmonixError,
    "A spec is invalid. `errors` lists every problem as (path, value, message), e.g. ('providers[0].vpc.cidr', '10.0.0.0/8', '...')."
);
create_exception!(
    harmonix,
    InvalidInputError,
    HarmonixError,
    "An option or an input is out of range."
);
create_exception!(
    harmonix,
    InvalidPlanError,
    HarmonixError,
    "A plan is not valid: modified, of another format, or not matching its specs."
);
create_exception!(
    harmonix,
    PlanStaleError,
    HarmonixError,
    "A stack changed since the plan was made; nothing was executed. Plan again."
);
create_exception!(
    harmonix,
    LockHeldError,
    HarmonixError,
    "Another run holds an environment lock. `holder`, `lock_id` and `expires_at` say who and until when."
);
create_exception!(
    harmonix,
    StackFailedError,
    HarmonixError,
    "A stack failed. `stack` and `reason` name the first failure; `report` is the whole ApplyReport."
);
create_exception!(
    harmonix,
    StackNotReadyError,
    HarmonixError,
    "A stack is in a state that needs manual intervention before it can be planned."
);
create_exception!(harmonix, AwsError, HarmonixError, "An AWS call failed.");
create_exception!(
    harmonix,
    CredentialsError,
    AwsError,
    "A role could not be assumed or returned no credentials."
);
create_exception!(
    harmonix,
    WaitTimeoutError,
    HarmonixError,
    "A wait took longer than allowed."
);
create_exception!(
    harmonix,
    CatalogError,
    HarmonixError,
    "The catalog could not be built or written."
);
create_exception!(
    harmonix,
    FileError,
    HarmonixError,
    "A file could not be read or written."
);
create_exception!(
    harmonix,
    CancelledError,
    HarmonixError,
    "The operation was cancelled before it changed anything."
);

/// The exception for a core error, with its attributes set.
pub fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let msg = error_chain(e);
    let err = match e.code() {
        codes::VALIDATION => ValidationError::new_err(msg),
        codes::INVALID_INPUT => InvalidInputError::new_err(msg),
        codes::INVALID_PLAN => InvalidPlanError::new_err(msg),
        codes::PLAN_STALE => PlanStaleError::new_err(msg),
        codes::LOCK_HELD => LockHeldError::new_err(msg),
        codes::STACK_FAILED => StackFailedError::new_err(msg),
        codes::STACK_NOT_READY => StackNotReadyError::new_err(msg),
        codes::CREDENTIALS => CredentialsError::new_err(msg),
        codes::AWS => AwsError::new_err(msg),
        codes::TIMEOUT => WaitTimeoutError::new_err(msg),
        codes::CATALOG => CatalogError::new_err(msg),
        codes::IO => FileError::new_err(msg),
        codes::CANCELLED => CancelledError::new_err(msg),
        _ => HarmonixError::new_err(msg),
    };
    // Attributes are best effort: an exception is raised either way.
    let _ = annotate(py, &err, e);
    err
}

fn annotate(py: Python<'_>, err: &PyErr, e: &Error) -> PyResult<()> {
    let v = err.value(py);
    v.setattr("code", e.code())?;
    v.setattr("stack", e.stack())?;
    if let Some(errors) = e.validation_errors() {
        let list: Vec<(String, Option<String>, String)> = errors
            .iter()
            .map(|x| (x.path.clone(), x.value.clone(), x.message.clone()))
            .collect();
        v.setattr("errors", list)?;
    } else if e.code() == codes::VALIDATION {
        v.setattr("errors", Vec::<(String, Option<String>, String)>::new())?;
    }
    if let Error::Spec(harmonix_core::spec::SpecError::Invalid { origin, .. }) = e {
        v.setattr("origin", origin)?;
    }
    if let Error::Lock(LockError::Held {
        lock_id,
        holder,
        expires_at,
    }) = e
    {
        v.setattr("lock_id", lock_id)?;
        v.setattr("holder", holder.to_string())?;
        v.setattr(
            "expires_at",
            harmonix_core::engine::audit::rfc3339(*expires_at),
        )?;
    }
    Ok(())
}

/// Register the exceptions in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("HarmonixError", py.get_type::<HarmonixError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("InvalidPlanError", py.get_type::<InvalidPlanError>())?;
    m.add("PlanStaleError", py.get_type::<PlanStaleError>())?;
    m.add("LockHeldError", py.get_type::<LockHeldError>())?;
    m.add("StackFailedError", py.get_type::<StackFailedError>())?;
    m.add("StackNotReadyError", py.get_type::<StackNotReadyError>())?;
    m.add("AwsError", py.get_type::<AwsError>())?;
    m.add("CredentialsError", py.get_type::<CredentialsError>())?;
    m.add("WaitTimeoutError", py.get_type::<WaitTimeoutError>())?;
    m.add("CatalogError", py.get_type::<CatalogError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    Ok(())
}
