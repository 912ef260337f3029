//! `begin_block`: consensus misbehaviour (double-sign evidence from FinalizeBlock).
//!
//! Each item is recorded once, keyed by height and consensus address (evidence seen again is
//! ignored). Its validator is then punished through the app's validator set and the registry:
//! * the operator's node bond is slashed at the `double_sign` rate (burn / community-pool
//!   split as for every offence) and the node is jailed — a validator's stake is its
//!   operator's node bond (ADR 0004);
//! * the validator is removed from the consensus set (power 0 in `validator_updates`), unless
//!   it is the last one (CometBFT cannot run without validators; an event says so).
//!
//! A punishment that fails (no validator service, corrupt state) changes nothing but the
//! evidence record and emits `magnet.slashing.double_sign_failed`.

use crate::state::EVIDENCE_PREFIX;
use magnet_core::context::Misbehavior;
use magnet_core::store::Overlay;
use magnet_core::{Ctx, Event, GasMeter, ModuleError, Offence};

/// Record this block's misbehaviour evidence and punish the validators it names.
pub fn begin_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let items = ctx.block.misbehavior.clone();
    for m in items {
        let k = [EVIDENCE_PREFIX, &m.height.to_be_bytes(), &m.validator].concat();
        if ctx.get(&k)?.is_some() {
            continue;
        }
        ctx.set(&k, m.kind.as_bytes().to_vec())?;
        ctx.emit(
            Event::new("magnet.slashing.evidence")
                .attr("kind", &m.kind)
                .attr("validator", hex_of(&m.validator))
                .attr("height", m.height)
                .attr("power", m.power),
        );
        let block = ctx.block;
        let services = ctx.services();
        let mut ov = Overlay::new(ctx.store_mut());
        let mut sub = Ctx::new(block, &mut ov, GasMeter::infinite(), services);
        let r = punish_double_sign(&mut sub, &m);
        let events = sub.take_events();
        drop(sub);
        match r {
            Ok(()) => {
                ov.commit();
                for e in events {
                    ctx.emit(e);
                }
            }
            Err(e) => {
                ov.discard();
                ctx.emit(
                    Event::new("magnet.slashing.double_sign_failed")
                        .attr("validator", hex_of(&m.validator))
                        .attr("error", e.to_string()),
                );
            }
        }
    }
    Ok(())
}

fn punish_double_sign(ctx: &mut Ctx, m: &Misbehavior) -> Result<(), ModuleError> {
    let vals = ctx.services().validators()?;
    let who = hex_of(&m.validator);
    let Some(rec) = vals.by_consensus_address(ctx, &m.validator)? else {
        ctx.emit(
            Event::new("magnet.slashing.double_sign")
                .attr("validator", &who)
                .attr("outcome", "unknown validator"),
        );
        return Ok(());
    };
    let evidence = format!("{} at height {} by validator {who}", m.kind, m.height);
    let mut slashed: u128 = 0;
    if let Some(op) = rec.operator {
        let registry = ctx.services().registry()?;
        if registry.node(ctx, &op)?.is_some() {
            slashed = crate::handler::slash_node(ctx, &op, Offence::DoubleSign, &evidence)?;
        }
    }
    let removed = if rec.power > 0 {
        match vals.set_power(ctx, &rec.pub_key_ed25519, 0) {
            Ok(()) => "removed".to_string(),
            Err(e) => format!("kept: {}", e.log),
        }
    } else {
        "not in the set".to_string()
    };
    let mut ev = Event::new("magnet.slashing.double_sign")
        .attr("validator", &who)
        .attr("slashed", slashed)
        .attr("set", removed);
    if let Some(op) = rec.operator {
        ev = ev.attr("operator", op);
    }
    ctx.emit(ev);
    Ok(())
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
