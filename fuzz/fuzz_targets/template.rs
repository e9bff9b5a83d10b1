//! Fuzz target `template`: see `hookgate::verify::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::template(data);
});
