//! Fuzz target `standard_header`: see `hookgate::verify::fuzzing::standard_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::standard_header(data);
});
