//! Build and sign Cosmos SDK transactions (`TxRaw`, `SIGN_MODE_DIRECT`).
//!
//! A transaction is bound to its chain id, the signer's account number and sequence; the
//! node rejects it on any other chain or once the sequence has moved on (replay protection).

use crate::{ClientError, Key};
use magnet_core::{Address, Coins};

/// Gas limit used when the caller gives none: a MsgSend costs far less.
pub const DEFAULT_GAS: u64 = 200_000;

/// Everything that binds a signature besides the messages.
#[derive(Clone, Debug)]
pub struct SignerData {
    /// Chain id, e.g. `magnet-devnet-1`.
    pub chain_id: String,
    /// On-chain account number of the signer.
    pub account_number: u64,
    /// Next sequence of the signer.
    pub sequence: u64,
}

/// Fee and gas of a tx.
#[derive(Clone, Debug)]
pub struct FeeSpec {
    /// Fee coins (usually one `umag` amount).
    pub amount: Coins,
    /// Gas limit.
    pub gas_limit: u64,
}

/// The gas price clients pay when told none, umag per gas: the chain's default minimum
/// (`auth.min_gas_price`, ADR 0097), so a default tx is accepted by a default chain.
pub const DEFAULT_GAS_PRICE: &str = "0.025";

impl FeeSpec {
    /// The smallest fee that pays `gas_limit` at `gas_price` (umag per gas, decimal such as
    /// `"0.025"` or `"0.025umag"`): `ceil(gas_limit × gas_price)` umag, no coin when that is 0.
    pub fn at_price(gas_limit: u64, gas_price: &str) -> Result<FeeSpec, ClientError> {
        let price = magnet_core::gas::GasPrice::parse(gas_price)
            .map_err(|e| ClientError::Tx(format!("gas price: {}", e.log)))?;
        let fee = price.fee_for(gas_limit);
        let amount = if fee == 0 {
            Coins::new()
        } else {
            Coins::umag(fee)
        };
        Ok(FeeSpec { amount, gas_limit })
    }
}

fn to_cosmrs_coins(coins: &Coins) -> Result<Vec<cosmrs::Coin>, ClientError> {
    coins
        .iter()
        .map(|(denom, amount)| {
            Ok(cosmrs::Coin {
                denom: denom
                    .parse()
                    .map_err(|e| ClientError::Tx(format!("denom {denom}: {e}")))?,
                amount,
            })
        })
        .collect()
}

fn account_id(addr: &Address) -> Result<cosmrs::AccountId, ClientError> {
    cosmrs::AccountId::new(magnet_core::BECH32_PREFIX, addr.as_bytes())
        .map_err(|e| ClientError::Tx(format!("address {addr}: {e}")))
}

/// A `/cosmos.bank.v1beta1.MsgSend` as an `Any`.
pub fn msg_send(from: &Address, to: &Address, amount: &Coins) -> Result<cosmrs::Any, ClientError> {
    use cosmrs::tx::Msg;
    cosmrs::bank::MsgSend {
        from_address: account_id(from)?,
        to_address: account_id(to)?,
        amount: to_cosmrs_coins(amount)?,
    }
    .to_any()
    .map_err(|e| ClientError::Tx(e.to_string()))
}

/// Sign `msgs` with `key`; returns the `TxRaw` bytes ready for `broadcast_tx_*`.
pub fn sign_tx(
    key: &Key,
    msgs: Vec<cosmrs::Any>,
    memo: &str,
    fee: &FeeSpec,
    signer: &SignerData,
) -> Result<Vec<u8>, ClientError> {
    let body = cosmrs::tx::Body::new(msgs, memo, 0u32);
    let fee_coins = to_cosmrs_coins(&fee.amount)?;
    let cosmrs_fee = cosmrs::tx::Fee {
        amount: fee_coins,
        gas_limit: fee.gas_limit,
        payer: None,
        granter: None,
    };
    let auth_info = cosmrs::tx::SignerInfo::single_direct(
        Some(key.signing_key().public_key()),
        signer.sequence,
    )
    .auth_info(cosmrs_fee);
    let chain_id: cosmrs::tendermint::chain::Id = signer
        .chain_id
        .parse()
        .map_err(|e| ClientError::Tx(format!("chain id {:?}: {e}", signer.chain_id)))?;
    let sign_doc = cosmrs::tx::SignDoc::new(&body, &auth_info, &chain_id, signer.account_number)
        .map_err(|e| ClientError::Tx(e.to_string()))?;
    let raw = sign_doc
        .sign(key.signing_key())
        .map_err(|e| ClientError::Tx(e.to_string()))?;
    raw.to_bytes().map_err(|e| ClientError::Tx(e.to_string()))
}

/// The CometBFT tx hash: upper-case hex SHA-256 of the raw bytes.
pub fn tx_hash(tx: &[u8]) -> String {
    hex::encode_upper(magnet_core::sha256(tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fee_at_a_price_is_the_gas_limit_times_the_price_rounded_up() {
        for (gas, price, want) in [
            (200_000, "0.025", 5_000u128),
            (200_001, "0.025", 5_001),
            (2_000_000, "0.025umag", 50_000),
            (1, "0.025", 1),
            (200_000, "0", 0),
        ] {
            let f = FeeSpec::at_price(gas, price).unwrap();
            assert_eq!(f.gas_limit, gas);
            assert_eq!(f.amount.amount_of("umag"), want, "{gas} × {price}");
        }
        assert!(FeeSpec::at_price(1, "cheap").is_err());
        assert_eq!(
            FeeSpec::at_price(DEFAULT_GAS, DEFAULT_GAS_PRICE)
                .unwrap()
                .amount
                .amount_of("umag"),
            5_000
        );
    }

    #[test]
    fn a_signed_send_decodes_back_with_its_fields() {
        let key = Key::generate().unwrap();
        let to = Address([9; 20]);
        let amount: Coins = "1000umag".parse().unwrap();
        let fee = FeeSpec {
            amount: "500umag".parse().unwrap(),
            gas_limit: 100_000,
        };
        let signer = SignerData {
            chain_id: "magnet-test".into(),
            account_number: 3,
            sequence: 7,
        };
        let bytes = sign_tx(
            &key,
            vec![msg_send(&key.address(), &to, &amount).unwrap()],
            "hi",
            &fee,
            &signer,
        )
        .unwrap();
        let tx = cosmrs::Tx::from_bytes(&bytes).unwrap();
        assert_eq!(tx.body.memo, "hi");
        assert_eq!(tx.auth_info.signer_infos[0].sequence, 7);
        assert_eq!(tx.auth_info.fee.gas_limit, 100_000);
        assert_eq!(tx.body.messages[0].type_url, "/cosmos.bank.v1beta1.MsgSend");
        assert_eq!(tx_hash(&bytes).len(), 64);
    }
}
