//! A passed software-upgrade proposal stops the chain at its halt height: FinalizeBlock of
//! that height is refused with an operator-facing message and changes nothing, until a binary
//! that implements the upgrade runs it.

mod common;

use common::chain::*;

use magnet_app::testkit::Signer;
use magnet_app::{Application, FinalizeError};
use magnet_testkit::magnet_gov::msgs as gm;

#[test]
fn a_passed_upgrade_halts_the_chain_at_its_height_without_changing_state() {
    let voter = Signer::from_seed(1);
    let mut c = governed(&voter);
    let halt = 30u64;
    let plan = serde_json::json!({"software_upgrade": {"name": "v2", "halt_height": halt}});
    let submit = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "upgrade", &plan, 1_000)],
    );
    c.block(vec![submit], 5);
    let vote = c.tx(&voter, vec![gm::vote(&voter.address(), 1, "yes")]);
    c.block(vec![vote], 5);
    while (c.h.height as u64) < halt - 1 {
        c.block(vec![], 5);
    }
    assert_eq!(c.q("/magnet.gov.v1/proposal", "1")["status"], "passed");
    assert_eq!(c.h.app.upgrade_plan(), Some(("v2".to_string(), halt)));

    // Height `halt` is refused, twice, with nothing staged or committed.
    let before = c.h.app.last_commit();
    assert_eq!(before.0, halt - 1);
    for _ in 0..2 {
        let req = c.request(vec![], 0);
        let err = c.h.app.try_finalize_block(req).unwrap_err();
        match &err {
            FinalizeError::UpgradeNeeded { name, height, .. } => {
                assert_eq!((name.as_str(), *height), ("v2", halt));
            }
            other => panic!("unexpected {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("UPGRADE \"v2\" NEEDED") && msg.contains("start the release"),
            "{msg}"
        );
        assert_eq!(c.h.app.last_commit(), before);
    }
    // The ABCI entry point stops (CometBFT halts with it) rather than answering.
    let req = c.request(vec![], 0);
    let app = c.h.app.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.finalize_block(req)));
    assert!(r.is_err());
    assert_eq!(c.h.app.last_commit(), before);

    // A binary that implements "v2" runs the halt block, clears the plan and goes on.
    c.h.app.register_upgrade("v2");
    let r = c.block(vec![], 5);
    assert!(r
        .events
        .iter()
        .any(|e| e.r#type == "magnet.upgrade.applied"));
    assert_eq!(c.h.app.upgrade_plan(), None);
    c.block(vec![], 5);
    assert_eq!(c.h.app.last_commit().0, halt + 1);
}

#[test]
fn an_upgrade_whose_halt_height_passes_during_voting_fails_instead_of_halting() {
    let voter = Signer::from_seed(1);
    let mut c = governed(&voter);
    let plan = serde_json::json!({"software_upgrade": {"name": "v2", "halt_height": 5}});
    let submit = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "late", &plan, 1_000)],
    );
    c.block(vec![submit], 5);
    let vote = c.tx(&voter, vec![gm::vote(&voter.address(), 1, "yes")]);
    c.block(vec![vote], 5);
    for _ in 0..12 {
        c.block(vec![], 5);
    }
    let p = c.q("/magnet.gov.v1/proposal", "1");
    assert!(p["status"].to_string().contains("passed before"), "{p}");
    assert_eq!(c.h.app.upgrade_plan(), None);
}
