//! Slashing has no transactions: offences are reported by other modules through the
//! [`magnet_core::Slashing`] service, and `MsgUnjail` belongs to the registry. The query
//! type is `magnet.slashing.v1.SlashRecord` (JSON over ABCI query).
pub use magnet_proto::slashing::v1::SlashRecord as SlashRecordProto;
