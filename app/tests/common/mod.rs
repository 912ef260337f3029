//! Shared test harness: an app in a temp dir, a funded genesis, block helpers.
#![allow(dead_code)]

pub mod chain;

use magnet_app::abci as pb;
use magnet_app::testkit::{genesis_app_state, Signer, TxBuilder};
use magnet_app::{AppConfig, Application, MagnetApp, StoreConfig};
use magnet_core::Address;
use prost::Message;
use std::path::{Path, PathBuf};

pub const CHAIN_ID: &str = "magnet-test-1";
pub const GENESIS_TIME: i64 = 1_700_000_000;

pub fn fast_config() -> AppConfig {
    AppConfig {
        store: StoreConfig {
            keep_recent: 0,
            fsync: false,
        },
        min_gas_price: "0".into(),
        snapshot: Default::default(),
    }
}

pub struct Harness {
    pub app: MagnetApp,
    pub dir: PathBuf,
    pub height: i64,
    _tmp: Option<tempfile::TempDir>,
}

pub fn timestamp(height: i64) -> tendermint_proto::google::protobuf::Timestamp {
    tendermint_proto::google::protobuf::Timestamp {
        seconds: GENESIS_TIME + height * 5,
        nanos: 0,
    }
}

pub fn init_request(app_state: &serde_json::Value) -> pb::RequestInitChain {
    pb::RequestInitChain {
        time: Some(timestamp(0)),
        chain_id: CHAIN_ID.into(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: serde_json::to_vec(app_state).unwrap().into(),
        initial_height: 1,
    }
}

pub fn finalize_request(height: i64, txs: Vec<Vec<u8>>) -> pb::RequestFinalizeBlock {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&height.to_be_bytes());
    pb::RequestFinalizeBlock {
        txs: txs.into_iter().map(Into::into).collect(),
        decided_last_commit: None,
        misbehavior: vec![],
        hash: hash.to_vec().into(),
        height,
        time: Some(timestamp(height)),
        next_validators_hash: Default::default(),
        proposer_address: vec![1u8; 20].into(),
    }
}

impl Harness {
    /// A fresh app with `accounts` funded at genesis.
    pub fn new(accounts: &[(Address, u128)], config: AppConfig) -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut h = Harness::open(&dir, config);
        h._tmp = Some(tmp);
        h.app.init_chain(init_request(&genesis_app_state(accounts)));
        h
    }

    /// A fresh app with the registered modules plus `extra`, `accounts` funded at genesis.
    pub fn with_modules(
        accounts: &[(Address, u128)],
        config: AppConfig,
        extra: Vec<Box<dyn magnet_core::Module>>,
    ) -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let mut mods = magnet_app::modules::registered_modules();
        mods.extend(extra);
        let app = MagnetApp::open_with_modules(tmp.path(), config, mods).unwrap();
        app.init_chain(init_request(&genesis_app_state(accounts)));
        Harness {
            app,
            dir: tmp.path().to_path_buf(),
            height: 0,
            _tmp: Some(tmp),
        }
    }

    pub fn open(dir: &Path, config: AppConfig) -> Harness {
        let app = MagnetApp::open(dir, config).unwrap();
        let height = app.last_commit().0 as i64;
        Harness {
            app,
            dir: dir.to_path_buf(),
            height,
            _tmp: None,
        }
    }

    /// FinalizeBlock + Commit of the next height at block time `t` (seconds).
    pub fn block_at(&mut self, t: i64, txs: Vec<Vec<u8>>) -> pb::ResponseFinalizeBlock {
        self.height += 1;
        let mut req = finalize_request(self.height, txs);
        req.time = Some(tendermint_proto::google::protobuf::Timestamp {
            seconds: t,
            nanos: 0,
        });
        let r = self.app.finalize_block(req);
        self.app.commit();
        r
    }

    /// FinalizeBlock + Commit of the next height.
    pub fn block(&mut self, txs: Vec<Vec<u8>>) -> pb::ResponseFinalizeBlock {
        self.height += 1;
        let r = self.app.finalize_block(finalize_request(self.height, txs));
        self.app.commit();
        r
    }

    pub fn check(&self, tx: &[u8]) -> pb::ResponseCheckTx {
        self.app.check_tx(pb::RequestCheckTx {
            tx: tx.to_vec().into(),
            r#type: 0,
        })
    }

    pub fn query(&self, path: &str, data: Vec<u8>, height: i64) -> pb::ResponseQuery {
        self.app.query(pb::RequestQuery {
            data: data.into(),
            path: path.into(),
            height,
            prove: false,
        })
    }

    pub fn balance(&self, addr: &Address) -> u128 {
        self.balance_at(addr, 0)
    }

    pub fn balance_at(&self, addr: &Address, height: i64) -> u128 {
        use cosmrs::proto::cosmos::bank::v1beta1 as b;
        let r = self.query(
            "/cosmos.bank.v1beta1.Query/Balance",
            b::QueryBalanceRequest {
                address: addr.to_bech32(),
                denom: "umag".into(),
            }
            .encode_to_vec(),
            height,
        );
        assert_eq!(r.code, 0, "{}", r.log);
        b::QueryBalanceResponse::decode(r.value.as_ref())
            .unwrap()
            .balance
            .unwrap()
            .amount
            .parse()
            .unwrap()
    }

    /// (account_number, sequence), or None if the account does not exist.
    pub fn account(&self, addr: &Address) -> Option<(u64, u64)> {
        use cosmrs::proto::cosmos::auth::v1beta1 as a;
        let r = self.query(
            "/cosmos.auth.v1beta1.Query/Account",
            a::QueryAccountRequest {
                address: addr.to_bech32(),
            }
            .encode_to_vec(),
            0,
        );
        if r.code != 0 {
            assert!(r.log.contains("NotFound"), "{}", r.log);
            return None;
        }
        let any = a::QueryAccountResponse::decode(r.value.as_ref())
            .unwrap()
            .account
            .unwrap();
        assert_eq!(any.type_url, "/cosmos.auth.v1beta1.BaseAccount");
        let acct = a::BaseAccount::decode(any.value.as_slice()).unwrap();
        Some((acct.account_number, acct.sequence))
    }

    /// A signed send from `from` using its current on-chain number and sequence.
    pub fn send(&self, from: &Signer, to: &Address, amount: u128) -> Vec<u8> {
        let (num, seq) = self.account(&from.address()).unwrap_or((0, 0));
        TxBuilder::new(CHAIN_ID, num, seq)
            .fee(2_000, 200_000)
            .send(from, to, amount, "umag")
            .sign(from)
    }
}
