//! The fuzz targets' regression corpus (`fuzz/regressions/<target>/*`) through the same entry
//! functions the fuzzers call, so every interesting input found stays covered by `cargo test`.

use std::path::Path;

use hookgate::verify::fuzzing;

#[test]
fn every_regression_input_runs_through_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for target in fuzzing::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            assert!(fuzzing::run(target, &data), "{target}");
            ran += 1;
        }
    }
    assert!(
        ran >= fuzzing::TARGETS.len() * 3,
        "only {ran} regression inputs"
    );
}
