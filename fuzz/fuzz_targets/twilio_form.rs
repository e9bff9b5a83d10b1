//! Fuzz target `twilio_form`: see `hookgate::verify::fuzzing::twilio_form`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hookgate::verify::fuzzing::twilio_form(data);
});
