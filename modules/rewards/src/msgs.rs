//! Rewards has no transactions: settlement runs at epoch ends. Query types are
//! `magnet.rewards.v1.Settlement` / `Payout` (served as JSON).
pub use magnet_proto::rewards::v1::{Payout as PayoutProto, Settlement as SettlementProto};
