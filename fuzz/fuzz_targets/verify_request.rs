//! Fuzz target `verify_request`: see `hookgate::verify::fuzzing::verify_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::verify_request(data);
});
