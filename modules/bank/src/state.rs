//! Every bank storage key, and typed access to it.
//!
//! * `bank/balance/<addr:20><denom>` → amount (u128, borsh). Zero balances are deleted.
//! * `bank/supply/<denom>` → amount (u128, borsh).

use magnet_core::{Address, BankError, Coins, Ctx, KvStore};

/// Prefix of all balances.
pub const BALANCE_PREFIX: &[u8] = b"bank/balance/";
/// Prefix of all supplies.
pub const SUPPLY_PREFIX: &[u8] = b"bank/supply/";

/// Key of one balance.
pub fn balance_key(addr: &Address, denom: &str) -> Vec<u8> {
    [BALANCE_PREFIX, addr.as_bytes().as_slice(), denom.as_bytes()].concat()
}

/// Key of one supply.
pub fn supply_key(denom: &str) -> Vec<u8> {
    [SUPPLY_PREFIX, denom.as_bytes()].concat()
}

fn decode(key: &[u8], v: Option<Vec<u8>>) -> Result<u128, BankError> {
    match v {
        None => Ok(0),
        Some(b) => borsh::from_slice::<u128>(&b)
            .map_err(|e| BankError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(key)))),
    }
}

/// Balance (metered).
pub fn balance(ctx: &mut Ctx, addr: &Address, denom: &str) -> Result<u128, BankError> {
    let k = balance_key(addr, denom);
    let v = ctx.get(&k)?;
    decode(&k, v)
}

/// Set a balance (metered); zero deletes the key.
pub fn set_balance(
    ctx: &mut Ctx,
    addr: &Address,
    denom: &str,
    amount: u128,
) -> Result<(), BankError> {
    let k = balance_key(addr, denom);
    if amount == 0 {
        ctx.delete(&k)?;
    } else {
        ctx.set_borsh(&k, &amount)?;
    }
    Ok(())
}

/// Supply (metered).
pub fn supply(ctx: &mut Ctx, denom: &str) -> Result<u128, BankError> {
    let k = supply_key(denom);
    let v = ctx.get(&k)?;
    decode(&k, v)
}

/// Set a supply (metered).
pub fn set_supply(ctx: &mut Ctx, denom: &str, amount: u128) -> Result<(), BankError> {
    let k = supply_key(denom);
    if amount == 0 {
        ctx.delete(&k)?;
    } else {
        ctx.set_borsh(&k, &amount)?;
    }
    Ok(())
}

/// All balances of an account (metered).
pub fn balances(ctx: &mut Ctx, addr: &Address) -> Result<Coins, BankError> {
    let prefix = [BALANCE_PREFIX, addr.as_bytes().as_slice()].concat();
    let mut out = Coins::new();
    for (k, v) in ctx.scan_prefix(&prefix)? {
        let denom = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
        let amt = decode(&k, Some(v))?;
        out.checked_add_coin(&denom, amt)?;
    }
    Ok(out)
}

/// All balances of an account, read-only (queries).
pub fn balances_at(store: &dyn KvStore, addr: &Address) -> Result<Coins, BankError> {
    let prefix = [BALANCE_PREFIX, addr.as_bytes().as_slice()].concat();
    let mut out = Coins::new();
    for (k, v) in magnet_core::store::scan_prefix(store, &prefix) {
        let denom = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
        out.checked_add_coin(&denom, decode(&k, Some(v))?)?;
    }
    Ok(out)
}

/// Every (address, denom, amount), ascending by key (genesis export, invariant checks).
pub fn all_balances(store: &dyn KvStore) -> Result<Vec<(Address, String, u128)>, BankError> {
    let mut out = Vec::new();
    for (k, v) in magnet_core::store::scan_prefix(store, BALANCE_PREFIX) {
        let rest = &k[BALANCE_PREFIX.len()..];
        if rest.len() < 20 {
            return Err(BankError::Corrupt("short balance key".into()));
        }
        let addr =
            Address::from_slice(&rest[..20]).map_err(|e| BankError::Corrupt(e.to_string()))?;
        let denom = String::from_utf8_lossy(&rest[20..]).to_string();
        out.push((addr, denom, decode(&k, Some(v))?));
    }
    Ok(out)
}

/// Every (denom, supply), ascending.
pub fn all_supply(store: &dyn KvStore) -> Result<Vec<(String, u128)>, BankError> {
    magnet_core::store::scan_prefix(store, SUPPLY_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            let denom = String::from_utf8_lossy(&k[SUPPLY_PREFIX.len()..]).to_string();
            decode(&k, Some(v)).map(|a| (denom, a))
        })
        .collect()
}
