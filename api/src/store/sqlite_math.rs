//! `ln` and `exp` for SQLite, which the bundled library is built without. Postgres has
//! both, so SQL that uses them (the churn model's pAlive in filters and segments) is
//! the same text on either database.

use std::ffi::{c_int, c_void};

use sea_orm::sqlx::Error;
use sea_orm::sqlx::sqlite::{SqliteConnection, SqlitePoolOptions};

use libsqlite3_sys as ffi;

/// Registers the functions on every connection the pool opens.
pub fn on_connect(options: SqlitePoolOptions) -> SqlitePoolOptions {
    options.after_connect(|connection, _| Box::pin(register(connection)))
}

async fn register(connection: &mut SqliteConnection) -> Result<(), Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    for (name, function) in [(c"ln", ln as unsafe extern "C" fn(_, _, _)), (c"exp", exp)] {
        // SAFETY: `db` is a live connection held by the lock; the name is a static C
        // string; the function pointer has the signature SQLite calls with one argument.
        let status = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                1,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
                std::ptr::null_mut::<c_void>(),
                Some(function),
                None,
                None,
                None,
            )
        };
        if status != ffi::SQLITE_OK {
            return Err(Error::Protocol(format!(
                "cannot register the SQLite function {name:?}: code {status}"
            )));
        }
    }
    Ok(())
}

/// Applies `f` to the one argument: NULL for NULL, and for a result that is not a
/// finite number (as Postgres would refuse it).
unsafe fn apply(
    context: *mut ffi::sqlite3_context,
    argv: *mut *mut ffi::sqlite3_value,
    f: fn(f64) -> f64,
) {
    // SAFETY: SQLite passes one argument (registered with nArg = 1).
    unsafe {
        let value = *argv;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_NULL {
            ffi::sqlite3_result_null(context);
            return;
        }
        let result = f(ffi::sqlite3_value_double(value));
        if result.is_finite() {
            ffi::sqlite3_result_double(context, result);
        } else {
            ffi::sqlite3_result_null(context);
        }
    }
}

unsafe extern "C" fn ln(
    context: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    unsafe { apply(context, argv, f64::ln) }
}

unsafe extern "C" fn exp(
    context: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    unsafe { apply(context, argv, f64::exp) }
}
