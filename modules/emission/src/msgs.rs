//! Emission has no transactions. Its query type is `magnet.emission.v1.EpochPool`
//! (served as JSON).
pub use magnet_proto::emission::v1::EpochPool as EpochPoolProto;
