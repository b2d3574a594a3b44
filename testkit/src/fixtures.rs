//! The real mail samples in `worker/tests/fixtures/` (its README says what each one is).

use std::path::PathBuf;

/// The sample file `name` of `worker/tests/fixtures/`, exactly as it is on disk.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../worker/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the fixture {}: {e}", path.display()))
}
