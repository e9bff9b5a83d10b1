//! Fuzz target `structured_header`: see `hookgate::verify::fuzzing::structured_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::structured_header(data);
});
