//! Generated protobuf types for MAGNET. Each `proto/magnet/<pkg>/v1/*.proto` becomes the
//! module `magnet_proto::<pkg>::v1`; message types implement `prost::Name` so
//! `Any::from_msg` yields `/magnet.<pkg>.v1.MsgX`.
#![allow(missing_docs, clippy::all)]

/// `magnet.p2p.v1`: the signed peer-to-peer protocol (peer exchange, heartbeat, shards, audits).
pub mod p2p {
    /// Version 1 of the P2P protocol.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/magnet.p2p.v1.rs"));
    }
}
