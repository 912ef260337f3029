//! Generated protobuf types for MAGNET. Each `proto/magnet/<pkg>/v1/*.proto` becomes the
//! module `magnet_proto::<pkg>::v1`; message types implement `prost::Name` so
//! `Any::from_msg` yields `/magnet.<pkg>.v1.MsgX`.
#![allow(missing_docs, clippy::all)]

macro_rules! magnet_pkg {
    ($name:ident, $file:literal) => {
        #[doc = concat!("Package `", $file, "`.")]
        pub mod $name {
            /// Version 1.
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
            }
        }
    };
}

// On-chain incentive modules (wt/modules).
magnet_pkg!(registry, "magnet.registry.v1");
magnet_pkg!(emission, "magnet.emission.v1");
magnet_pkg!(contrib, "magnet.contrib.v1");
magnet_pkg!(rewards, "magnet.rewards.v1");
magnet_pkg!(slashing, "magnet.slashing.v1");
magnet_pkg!(notary, "magnet.notary.v1");
magnet_pkg!(data, "magnet.data.v1");
magnet_pkg!(jobs, "magnet.jobs.v1");
magnet_pkg!(gov, "magnet.gov.v1");
magnet_pkg!(custody, "magnet.custody.v1");

// Peer-to-peer protocol (wt/p2p): peer exchange, heartbeat, shards, audits.
magnet_pkg!(p2p, "magnet.p2p.v1");

#[cfg(test)]
mod tests {
    use prost::Name;

    #[test]
    fn incentive_messages_have_cosmos_style_type_urls() {
        assert_eq!(
            super::registry::v1::MsgRegisterNode::type_url(),
            "/magnet.registry.v1.MsgRegisterNode"
        );
        assert_eq!(
            super::gov::v1::MsgVote::type_url(),
            "/magnet.gov.v1.MsgVote"
        );
        let any = prost_types::Any::from_msg(&super::contrib::v1::MsgCommit::default()).unwrap();
        assert_eq!(any.type_url, "/magnet.contrib.v1.MsgCommit");
    }
}
