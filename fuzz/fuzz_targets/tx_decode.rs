//! Fuzz the tx decoder: any bytes must give a decoded tx or a typed error, never a panic.
//! Its seed corpus (`corpus/tx_decode/`) is replayed on stable by
//! `app/tests/fuzz_corpus.rs` in every CI run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = magnet_app::tx::decode_standalone(data);
});
