//! The cassette loader (`pkit::testing::RecordReplay::replay`): any bytes
//! give runs or a clear error, never a panic; every run loaded is replayed
//! as recorded; and a cassette written back out loads again to the same
//! cassette.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(saved) = pkit::fuzzing::cassette_load(bytes) else {
        return;
    };
    let again = pkit::fuzzing::cassette_load(&saved)
        .unwrap_or_else(|e| panic!("a saved cassette does not load: {e}"));
    assert_eq!(saved, again, "saving is not stable");
});
