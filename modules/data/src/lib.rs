//! # magnet-data — data registration
//!
//! `MsgRegisterData{hash, size, domain}` pays `registration_fee` into escrow and creates a
//! **pending** record (one per hash). During `challenge_window_secs` a notary challenge
//! (`data/<id>`) freezes it. At the end of the window an undisputed record is **confirmed**
//! and its fee split: `contributor_ppm` back to the contributor, `notaries_ppm` equally to
//! the panel, `burn_ppm` burned, the rest and every remainder to the community pool. A
//! challenge the panel upholds **rejects** it: the fee goes to the community pool and the
//! contributor, if it runs a node, is slashed for `invalid_data` by the notary module.
//!
//! Queries (JSON): `/magnet.data.v1/params`, `/magnet.data.v1/records`,
//! `/magnet.data.v1/record` (data: id).
//!
//! # Security
//! Guarantees: fees are conserved exactly; a record confirms or is rejected once; a hash is
//! registered once. Does not guarantee: that the data behind the hash exists or is good —
//! that is what the challenge window is for.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod error;
pub mod handler;
pub mod hooks;
pub mod msgs;
pub mod params;
pub mod state;

pub use error::Error;
pub use params::Params;

use magnet_core::params::json;
use magnet_core::{
    community_pool, Address, Coins, Ctx, Module, ModuleError, Offence, QueryCtx, ValidatorUpdate,
};

/// The data module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct DataModule;

fn target_id(target: &str) -> Result<u64, Error> {
    target
        .strip_prefix("data/")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::NotDisputable {
            target: target.into(),
            why: "expected data/<id>".into(),
        })
}

impl Module for DataModule {
    fn name(&self) -> &'static str {
        "data"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
    fn end_block(&self, ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        hooks::end_block(ctx)?;
        Ok(Vec::new())
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        Some(match path {
            "/magnet.data.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.data.v1/records" => state::records(ctx.store).and_then(|r| json(&r)),
            "/magnet.data.v1/record" => String::from_utf8_lossy(data)
                .trim()
                .parse::<u64>()
                .map_err(|_| ModuleError::invalid_request("data must be a record id"))
                .and_then(|id| state::record(ctx.store, id))
                .and_then(|r| json(&r)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Disputable for DataModule {
    fn data_status(
        &self,
        ctx: &mut Ctx,
        hash: &[u8; 32],
    ) -> Result<Option<magnet_core::DataStatus>, ModuleError> {
        let k = [state::HASH_PREFIX, hash.as_slice()].concat();
        let id: Option<u64> = ctx.get_borsh(&k)?;
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(state::record(ctx.store(), id)?.map(|r| match r.status {
            Status::Pending => magnet_core::DataStatus::Pending,
            Status::Confirmed => magnet_core::DataStatus::Confirmed,
            Status::Rejected => magnet_core::DataStatus::Rejected,
        }))
    }
    fn open_dispute(&self, ctx: &mut Ctx, target: &str) -> Result<(Address, Offence), ModuleError> {
        let id = target_id(target)?;
        let bad = |why: &str| -> ModuleError {
            Error::NotDisputable {
                target: target.into(),
                why: why.into(),
            }
            .into()
        };
        let mut r = state::record(ctx.store(), id)?.ok_or_else(|| bad("no such record"))?;
        if r.status != Status::Pending || ctx.block.time_secs >= r.until {
            return Err(bad("its challenge window has closed"));
        }
        if r.disputed {
            return Err(bad("already disputed"));
        }
        r.disputed = true;
        state::set_record(ctx, &r)?;
        Ok((r.contributor, Offence::InvalidData))
    }
    fn close_dispute(&self, ctx: &mut Ctx, target: &str, upheld: bool) -> Result<(), ModuleError> {
        let id = target_id(target)?;
        let Some(mut r) = state::record(ctx.store(), id)? else {
            return Ok(());
        };
        r.disputed = false;
        if upheld && r.status == Status::Pending {
            r.status = Status::Rejected;
            ctx.services().bank.send(
                ctx,
                &state::escrow(),
                &community_pool(),
                &Coins::umag(r.fee),
            )?;
            ctx.emit(magnet_core::Event::new("magnet.data.rejected").attr("id", id));
        }
        state::set_record(ctx, &r)?;
        Ok(())
    }
}

use state::Status;
