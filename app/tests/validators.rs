//! The validator set comes from genesis, and FinalizeBlock reports `validator_updates` only
//! when a module changes it.

mod common;

use common::*;
use magnet_app::modules::registered_modules;
use magnet_app::testkit::genesis_app_state;
use magnet_app::{Application, MagnetApp};
use magnet_core::{Ctx, Module, ModuleError, ValidatorUpdate};

/// Raises validator 0's power to 20 at height 3, and keeps asking for 20 afterwards.
struct PowerBump;
impl Module for PowerBump {
    fn name(&self) -> &'static str {
        "power_bump"
    }
    fn end_block(&self, ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        if ctx.block.height >= 3 {
            return Ok(vec![ValidatorUpdate {
                pub_key_ed25519: vec![7u8; 32],
                power: 20,
            }]);
        }
        Ok(Vec::new())
    }
}

#[test]
fn validator_updates_are_emitted_only_when_the_set_changes() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let mut mods = registered_modules();
    mods.push(Box::new(PowerBump));
    let app = MagnetApp::open_with_modules(tmp.path(), fast_config(), mods).unwrap();
    let mut state = genesis_app_state(&[]);
    state["validators"] = serde_json::json!([
        {"pub_key": base64::engine::general_purpose::STANDARD.encode([7u8; 32]), "power": "10", "name": "v0"},
        {"pub_key": base64::engine::general_purpose::STANDARD.encode([8u8; 32]), "power": "5", "name": "v1"},
    ]);
    let init = app.init_chain(init_request(&state));
    assert_eq!(init.validators.len(), 2);
    assert_eq!(init.validators[0].power, 10);
    let mut updates = Vec::new();
    for h in 1..=5 {
        let r = app.finalize_block(finalize_request(h, vec![]));
        app.commit();
        updates.push(r.validator_updates);
    }
    assert!(updates[0].is_empty() && updates[1].is_empty());
    assert_eq!(updates[2].len(), 1);
    assert_eq!(updates[2][0].power, 20);
    assert!(
        updates[3].is_empty() && updates[4].is_empty(),
        "no change, no update"
    );
    let exported = app.export().unwrap();
    let powers: Vec<u64> = exported.validators.iter().map(|v| v.power).collect();
    assert_eq!(powers, vec![20, 5]);
}
