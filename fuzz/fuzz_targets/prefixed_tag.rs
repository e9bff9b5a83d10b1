//! Fuzz target `prefixed_tag`: see `hookgate::verify::fuzzing::prefixed_tag`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::prefixed_tag(data);
});
