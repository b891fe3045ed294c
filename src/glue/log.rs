//! Warnings in Redis' log. Messages can carry client-given names, so they
//! are passed as data behind a "%s" (the crate's logger uses the message
//! as a printf format) and never carry a NUL.

use std::ffi::CString;
use std::ptr;

use redis_module::raw;

pub fn warning(message: &str) {
    let message = CString::new(format!("tq: {message}").replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: a copy of the function pointer set by RedisModule_Init.
    let Some(log) = (unsafe { raw::RedisModule_Log }) else {
        return;
    };
    // SAFETY: a NULL context is allowed; "%s" makes the message data,
    // never a format.
    unsafe {
        log(
            ptr::null_mut(),
            c"warning".as_ptr(),
            c"%s".as_ptr(),
            message.as_ptr(),
        )
    };
}
