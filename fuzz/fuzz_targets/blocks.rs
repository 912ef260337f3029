//! Structure-aware fuzzing of whole blocks (ADR 0102): the bytes are read as a
//! `magnet_app::fuzzing::FuzzInput` (a few blocks of signed txs carrying every message type
//! the app routes, with adversarial fields and envelopes) and run through CheckTx,
//! PrepareProposal, ProcessProposal, FinalizeBlock and Commit on two apps. Any panic, any tx
//! result with the caught-panic code sdk/111222, a replica that diverges, a rejected own
//! proposal or books that do not balance is a crash. The seed corpus (`corpus/blocks/`) is
//! replayed on stable by `app/tests/fuzz_blocks.rs` through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(finding) = magnet_app::fuzzing::run_bytes(data) {
        panic!("{finding}");
    }
});
