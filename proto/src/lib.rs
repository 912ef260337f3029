//! Generated protobuf types for MAGNET. Each `proto/magnet/<pkg>/v1/*.proto` becomes the
//! module `magnet_proto::<pkg>::v1`; message types implement `prost::Name` so
//! `Any::from_msg` yields `/magnet.<pkg>.v1.MsgX`.
#![allow(missing_docs, clippy::all)]
