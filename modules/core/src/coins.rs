//! Integer money. Amounts are `u128` base units; the native denom is `umag`
//! (1 MAG = 10^6 umag). [`Coins`] is a sorted set of non-zero amounts, one per denom.
//! Arithmetic is checked: an overflow or a shortfall is an error, never a wrap.

use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The native staking, fee and reward denom.
pub const NATIVE_DENOM: &str = "umag";

/// A single amount of one denom.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Coin {
    /// Denom, e.g. `umag`.
    pub denom: String,
    /// Amount in base units (serialised as a decimal string, as Cosmos does).
    #[serde(with = "u128_string")]
    pub amount: u128,
}

impl Coin {
    /// A coin of `amount` `denom`.
    pub fn new(amount: u128, denom: &str) -> Coin {
        Coin {
            denom: denom.to_string(),
            amount,
        }
    }
    /// `amount` umag.
    pub fn umag(amount: u128) -> Coin {
        Coin::new(amount, NATIVE_DENOM)
    }
}

impl fmt::Display for Coin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.denom)
    }
}

/// Errors of coin parsing and arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinsError {
    /// The text is not `<amount><denom>[,<amount><denom>…]`.
    #[error("cannot parse coins {input:?}: {reason}; write them like 1000umag or 5umag,3uatom")]
    Parse {
        /// Rejected input.
        input: String,
        /// Why.
        reason: String,
    },
    /// A sum would exceed u128.
    #[error("coin amount overflow in {denom}")]
    Overflow {
        /// Denom that overflowed.
        denom: String,
    },
    /// Subtracting more than is held.
    #[error("insufficient {denom}: have {have}, need {need}")]
    Insufficient {
        /// Denom.
        denom: String,
        /// Held amount.
        have: u128,
        /// Required amount.
        need: u128,
    },
}

/// A set of coins, at most one entry per denom, no zero amounts, sorted by denom.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Coins(BTreeMap<String, u128>);

impl Coins {
    /// No coins.
    pub fn new() -> Coins {
        Coins::default()
    }
    /// A single coin (empty if `amount == 0`).
    pub fn one(amount: u128, denom: &str) -> Coins {
        let mut c = Coins::new();
        if amount > 0 {
            c.0.insert(denom.to_string(), amount);
        }
        c
    }
    /// `amount` umag.
    pub fn umag(amount: u128) -> Coins {
        Coins::one(amount, NATIVE_DENOM)
    }
    /// Amount of `denom` (0 if absent).
    pub fn amount_of(&self, denom: &str) -> u128 {
        self.0.get(denom).copied().unwrap_or(0)
    }
    /// True when there are no coins.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Iterate `(denom, amount)` in denom order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u128)> {
        self.0.iter().map(|(d, a)| (d.as_str(), *a))
    }
    /// As a vector of [`Coin`] in denom order.
    pub fn to_vec(&self) -> Vec<Coin> {
        self.iter().map(|(d, a)| Coin::new(a, d)).collect()
    }
    /// Build from coins, summing duplicates and dropping zeros.
    pub fn from_coins<I: IntoIterator<Item = Coin>>(it: I) -> Result<Coins, CoinsError> {
        let mut c = Coins::new();
        for coin in it {
            c.checked_add_coin(&coin.denom, coin.amount)?;
        }
        Ok(c)
    }
    /// Add one amount in place.
    pub fn checked_add_coin(&mut self, denom: &str, amount: u128) -> Result<(), CoinsError> {
        if amount == 0 {
            return Ok(());
        }
        let cur = self.amount_of(denom);
        let sum = cur
            .checked_add(amount)
            .ok_or_else(|| CoinsError::Overflow {
                denom: denom.to_string(),
            })?;
        self.0.insert(denom.to_string(), sum);
        Ok(())
    }
    /// `self + other`.
    pub fn checked_add(&self, other: &Coins) -> Result<Coins, CoinsError> {
        let mut out = self.clone();
        for (d, a) in other.iter() {
            out.checked_add_coin(d, a)?;
        }
        Ok(out)
    }
    /// `self − other`, failing if any denom would go negative.
    pub fn checked_sub(&self, other: &Coins) -> Result<Coins, CoinsError> {
        let mut out = self.clone();
        for (d, a) in other.iter() {
            let have = out.amount_of(d);
            let left = have
                .checked_sub(a)
                .ok_or_else(|| CoinsError::Insufficient {
                    denom: d.to_string(),
                    have,
                    need: a,
                })?;
            if left == 0 {
                out.0.remove(d);
            } else {
                out.0.insert(d.to_string(), left);
            }
        }
        Ok(out)
    }
    /// True when every denom in `other` is covered by `self`.
    pub fn covers(&self, other: &Coins) -> bool {
        other.iter().all(|(d, a)| self.amount_of(d) >= a)
    }
}

fn valid_denom(d: &str) -> bool {
    let b = d.as_bytes();
    (3..=128).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b':' | b'.' | b'_' | b'-'))
}

impl FromStr for Coins {
    type Err = CoinsError;
    /// Parse `1000umag` or `5umag,3uatom` (Cosmos SDK notation).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| CoinsError::Parse {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let mut out = Coins::new();
        let t = s.trim();
        if t.is_empty() {
            return Ok(out);
        }
        for part in t.split(',') {
            let part = part.trim();
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| err("missing denom"))?;
            let (num, denom) = part.split_at(split);
            if num.is_empty() {
                return Err(err("missing amount"));
            }
            if !valid_denom(denom) {
                return Err(err(&format!("invalid denom {denom:?}")));
            }
            let amount: u128 = num
                .parse()
                .map_err(|_| err("amount does not fit in u128"))?;
            if out.amount_of(denom) > 0 {
                return Err(err(&format!("denom {denom} appears twice")));
            }
            out.checked_add_coin(denom, amount)?;
        }
        Ok(out)
    }
}

impl fmt::Display for Coins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(d, a)| format!("{a}{d}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl serde::Serialize for Coins {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_vec(), s)
    }
}

impl<'de> serde::Deserialize<'de> for Coins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Vec<Coin> as serde::Deserialize>::deserialize(d)?;
        Coins::from_coins(v).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: a 32-byte hash as 64 lowercase hex characters (JSON queries).
pub mod hex32 {
    /// Serialize.
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

/// Serde helper: `u128` as a decimal string (JSON numbers lose precision above 2^53).
pub mod u128_string {
    /// Serialise as a string.
    pub fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    /// Accept a string or a JSON integer.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        use serde::Deserialize;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
            Either::N(n) => Ok(n as u128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_cosmos_notation() {
        let c: Coins = "5umag,3uatom".parse().unwrap();
        assert_eq!(c.amount_of("umag"), 5);
        assert_eq!(c.amount_of("uatom"), 3);
        assert_eq!(c.to_string(), "3uatom,5umag");
    }

    #[test]
    fn rejects_bad_coin_strings() {
        for bad in [
            "umag",
            "12",
            "12u",
            "1umag,2umag",
            "-5umag",
            "99999999999999999999999999999999999999999umag",
        ] {
            assert!(bad.parse::<Coins>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn subtraction_below_zero_is_an_error() {
        let a = Coins::umag(5);
        assert_eq!(
            a.checked_sub(&Coins::umag(6)),
            Err(CoinsError::Insufficient {
                denom: "umag".into(),
                have: 5,
                need: 6
            })
        );
        assert_eq!(a.checked_sub(&Coins::umag(5)), Ok(Coins::new()));
    }

    #[test]
    fn addition_at_max_overflows_loudly() {
        let a = Coins::umag(u128::MAX);
        assert!(matches!(
            a.checked_add(&Coins::umag(1)),
            Err(CoinsError::Overflow { .. })
        ));
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(x in 0u128..u128::MAX / 2, y in 0u128..u128::MAX / 2) {
            let a = Coins::umag(x);
            let b = Coins::umag(y);
            let s = a.checked_add(&b).unwrap();
            prop_assert_eq!(s.checked_sub(&b), Ok(a));
        }
    }
}
