//! Logging and version (aura.h section "Logging and version"). The variadic `aura_log_emit`
//! is C (src/log_shim.c): it formats into 256 bytes and calls the sink installed here.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::ffi::boundary;
use crate::types::AuraLogFn;

/// `AURA_LOG_ERR`.
pub const AURA_LOG_ERR: c_int = 3;
/// `AURA_LOG_WARN`.
pub const AURA_LOG_WARN: c_int = 4;
/// `AURA_LOG_NOTICE`.
pub const AURA_LOG_NOTICE: c_int = 5;
/// `AURA_LOG_INFO`.
pub const AURA_LOG_INFO: c_int = 6;
/// `AURA_LOG_DEBUG`.
pub const AURA_LOG_DEBUG: c_int = 7;

/// Longest message, NUL included.
pub const MAX_MESSAGE: usize = 256;

/// The handler and its user data (as an address: it is the C caller's, never dereferenced).
struct Handler {
    f: AuraLogFn,
    ud: usize,
}

static HANDLER: Mutex<Handler> = Mutex::new(Handler { f: None, ud: 0 });
/// Whether a handler is installed (lets `aura_log_emit` skip formatting).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Passes a NUL-terminated message to the handler (called with no lock held, so the handler
/// may log or replace itself).
fn deliver(level: c_int, msg: &CStr) {
    let (f, ud) = {
        let h = HANDLER.lock().unwrap_or_else(|p| p.into_inner());
        (h.f, h.ud)
    };
    if let Some(f) = f {
        // SAFETY: a function of the aura_log_fn signature installed by the C caller; `msg`
        // outlives the call; `ud` is handed back unchanged.
        unsafe { f(level, msg.as_ptr(), ud as *mut c_void) };
    }
}

/// Logs a message from the library (truncated to 255 bytes, interior NULs cut).
pub fn log(level: c_int, msg: &str) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let mut bytes: Vec<u8> = msg.bytes().take_while(|&b| b != 0).collect();
    bytes.truncate(MAX_MESSAGE - 1);
    if let Ok(c) = CString::new(bytes) {
        deliver(level, &c);
    }
}

/// `void aura_set_log_handler(aura_log_fn handler, void *userdata)`: process-wide; NULL =
/// silent.
#[no_mangle]
pub extern "C" fn aura_set_log_handler(handler: AuraLogFn, userdata: *mut c_void) {
    boundary!((), {
        let mut h = HANDLER.lock().unwrap_or_else(|p| p.into_inner());
        h.f = handler;
        h.ud = userdata as usize;
        ENABLED.store(handler.is_some(), Ordering::Relaxed);
        // SAFETY: `sink` has the signature the shim expects and lives for the whole program.
        unsafe { aura__log_set_sink(Some(sink)) };
    })
}

extern "C" {
    /// src/log_shim.c: installs the function `aura_log_emit` hands formatted messages to.
    fn aura__log_set_sink(sink: Option<unsafe extern "C" fn(level: c_int, msg: *const c_char)>);
}

/// The sink of `aura_log_emit`: a NUL-terminated message of at most 255 characters.
///
/// # Safety
///
/// `msg` is NULL or a NUL-terminated string.
unsafe extern "C" fn sink(level: c_int, msg: *const c_char) {
    boundary!((), {
        if !msg.is_null() {
            // SAFETY: NUL-terminated (this fn's contract; the shim passes its own buffer).
            deliver(level, unsafe { CStr::from_ptr(msg) });
        }
    })
}

/// `const char *aura_version(void)`: "0.6.0".
#[no_mangle]
pub extern "C" fn aura_version() -> *const c_char {
    c"0.6.0".as_ptr()
}

/// `int aura_version_int(void)`: 600.
#[no_mangle]
pub extern "C" fn aura_version_int() -> c_int {
    600
}
