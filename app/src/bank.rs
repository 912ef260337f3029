//! The `bank` module: `MsgSend`, balance and supply queries, bank genesis, and the [`Bank`]
//! service every module gets (which also creates the recipient's account, as Cosmos does).
//!
//! Balances and supply live in `magnet-bank`'s keys (`bank/balance/…`, `bank/supply/…`);
//! this module adds the standard Cosmos messages and queries on top of that keeper so wallets
//! (cosmjs, Keplr) work unchanged.
//!
//! # Security
//! Guarantees: `MsgSend` moves only the signer's coins; amounts are validated (positive,
//! valid denoms, no duplicates) before any state is read; `supply = Σ balances` holds after
//! genesis (checked) and after every operation (the keeper's invariant).

use crate::auth;
use crate::error::{codes, TxError};
use cosmrs::proto::cosmos::bank::v1beta1 as bankpb;
use cosmrs::proto::cosmos::base::v1beta1::Coin as PbCoin;
use magnet_bank::{state, BankKeeper};
use magnet_core::{Address, Bank, BankError, Coins, Ctx, Module, ModuleError, MsgResult, QueryCtx};
use prost::Message;

/// Type URL of `MsgSend`.
pub const MSG_SEND_URL: &str = "/cosmos.bank.v1beta1.MsgSend";
/// Type URL of `MsgSendResponse`.
pub const MSG_SEND_RESPONSE_URL: &str = "/cosmos.bank.v1beta1.MsgSendResponse";

/// The bank service handed to modules: the keeper, plus account creation on first receive.
#[derive(Default, Clone, Copy, Debug)]
pub struct AccountingBank;

fn auth_err(e: ModuleError) -> BankError {
    match e.code {
        11 => BankError::OutOfGas(magnet_core::OutOfGas {
            descriptor: e.log,
            limit: 0,
            needed: 0,
        }),
        _ => BankError::Corrupt(e.log),
    }
}

impl Bank for AccountingBank {
    fn balance(&self, ctx: &mut Ctx, addr: &Address, denom: &str) -> Result<u128, BankError> {
        BankKeeper.balance(ctx, addr, denom)
    }
    fn balances(&self, ctx: &mut Ctx, addr: &Address) -> Result<Coins, BankError> {
        BankKeeper.balances(ctx, addr)
    }
    fn send(
        &self,
        ctx: &mut Ctx,
        from: &Address,
        to: &Address,
        amount: &Coins,
    ) -> Result<(), BankError> {
        BankKeeper.send(ctx, from, to, amount)?;
        auth::ensure_account(ctx, to).map_err(auth_err)?;
        Ok(())
    }
    fn mint(&self, ctx: &mut Ctx, to: &Address, amount: &Coins) -> Result<(), BankError> {
        BankKeeper.mint(ctx, to, amount)?;
        auth::ensure_account(ctx, to).map_err(auth_err)?;
        Ok(())
    }
    fn burn(&self, ctx: &mut Ctx, from: &Address, amount: &Coins) -> Result<(), BankError> {
        BankKeeper.burn(ctx, from, amount)
    }
    fn supply(&self, ctx: &mut Ctx, denom: &str) -> Result<u128, BankError> {
        BankKeeper.supply(ctx, denom)
    }
}

/// Validate Cosmos coins from a message: valid denoms, positive amounts, sorted, no duplicates.
pub fn parse_coins(field: &str, coins: &[PbCoin]) -> Result<Coins, TxError> {
    let bad = |why: String| TxError::sdk(codes::INVALID_COINS, format!("{field}: {why}"));
    let mut out = Coins::new();
    let mut last: Option<&str> = None;
    for c in coins {
        let text = format!("{}{}", c.amount, c.denom);
        let parsed: Coins = text
            .parse()
            .map_err(|e: magnet_core::CoinsError| bad(e.to_string()))?;
        let amount = parsed.amount_of(&c.denom);
        if amount == 0 || c.amount.is_empty() {
            return Err(bad(format!("amount of {} must be positive", c.denom)));
        }
        if let Some(prev) = last {
            if prev >= c.denom.as_str() {
                return Err(bad(format!(
                    "denoms must be sorted and unique ({prev} before {})",
                    c.denom
                )));
            }
        }
        last = Some(&c.denom);
        out.checked_add_coin(&c.denom, amount)
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(out)
}

/// Cosmos coins from [`Coins`].
pub fn to_pb_coins(c: &Coins) -> Vec<PbCoin> {
    c.iter()
        .map(|(d, a)| PbCoin {
            denom: d.to_string(),
            amount: a.to_string(),
        })
        .collect()
}

/// A checked `MsgSend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// Signer and payer.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// Amount (non-empty).
    pub amount: Coins,
}

/// Decode and check a `MsgSend`.
pub fn check_send(value: &[u8]) -> Result<Send, TxError> {
    let m = bankpb::MsgSend::decode(value)
        .map_err(|e| TxError::sdk(codes::TX_DECODE, format!("MsgSend does not decode: {e}")))?;
    let from = auth::parse_address("MsgSend.from_address", &m.from_address)?;
    let to = auth::parse_address("MsgSend.to_address", &m.to_address)?;
    let amount = parse_coins("MsgSend.amount", &m.amount)?;
    if amount.is_empty() {
        return Err(TxError::sdk(
            codes::INVALID_COINS,
            "MsgSend.amount: no coins to send",
        ));
    }
    Ok(Send { from, to, amount })
}

fn module_err(e: TxError) -> ModuleError {
    ModuleError::new(&e.codespace, e.code, e.log)
}

/// Bank genesis section (Cosmos shape: `balances: [{address, coins}]`, optional `supply`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BankGenesis {
    /// Initial balances.
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
    /// Total supply; when non-empty it must equal the sum of balances.
    #[serde(default)]
    pub supply: Coins,
}

/// One genesis balance.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GenesisBalance {
    /// Holder.
    pub address: Address,
    /// Coins held.
    pub coins: Coins,
}

/// The bank module.
#[derive(Default, Clone, Copy, Debug)]
pub struct BankModule;

impl Module for BankModule {
    /// Accounts (and balances) are exported whole, as the standard Cosmos genesis types.
    fn export_is_complete(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "bank"
    }

    fn msg_type_urls(&self) -> Vec<&'static str> {
        vec![MSG_SEND_URL]
    }

    fn validate_msg(&self, msg: &prost_types::Any) -> Result<Address, ModuleError> {
        match msg.type_url.as_str() {
            MSG_SEND_URL => check_send(&msg.value).map(|s| s.from).map_err(module_err),
            other => Err(ModuleError::unknown_msg(other)),
        }
    }

    fn deliver(&self, ctx: &mut Ctx, msg: &prost_types::Any) -> Result<MsgResult, ModuleError> {
        match msg.type_url.as_str() {
            MSG_SEND_URL => {
                let s = check_send(&msg.value).map_err(module_err)?;
                let signer = ctx.require_signer()?;
                if signer != s.from {
                    return Err(ModuleError::new(
                        "sdk",
                        codes::UNAUTHORIZED,
                        format!(
                            "MsgSend from {} is not signed by its sender (signer {signer})",
                            s.from
                        ),
                    ));
                }
                ctx.services().bank.send(ctx, &s.from, &s.to, &s.amount)?;
                Ok(MsgResult {
                    type_url: MSG_SEND_RESPONSE_URL.to_string(),
                    value: bankpb::MsgSendResponse {}.encode_to_vec(),
                })
            }
            other => Err(ModuleError::unknown_msg(other)),
        }
    }

    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        let g: BankGenesis = if genesis.is_null() {
            BankGenesis::default()
        } else {
            serde_json::from_value(genesis.clone())
                .map_err(|e| ModuleError::invalid_request(format!("bank genesis: {e}")))?
        };
        let mut total = Coins::new();
        let mut seen = std::collections::BTreeSet::new();
        for b in &g.balances {
            if !seen.insert(b.address) {
                return Err(ModuleError::invalid_request(format!(
                    "bank genesis: {} listed twice",
                    b.address
                )));
            }
            // mint keeps supply = Σ balances and creates the holder's account.
            AccountingBank.mint(ctx, &b.address, &b.coins)?;
            total = total
                .checked_add(&b.coins)
                .map_err(|e| ModuleError::invalid_request(format!("bank genesis: {e}")))?;
        }
        if !g.supply.is_empty() && g.supply != total {
            return Err(ModuleError::invalid_request(format!(
                "bank genesis: supply {} differs from the sum of balances {total}",
                g.supply
            )));
        }
        // Genesis mints are not news: drop their events.
        ctx.take_events();
        Ok(())
    }

    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        let mut balances: Vec<GenesisBalance> = Vec::new();
        for (addr, denom, amount) in state::all_balances(ctx.store).map_err(ModuleError::from)? {
            match balances.last_mut() {
                Some(b) if b.address == addr => b
                    .coins
                    .checked_add_coin(&denom, amount)
                    .map_err(|e| ModuleError::new("sdk", 1, e.to_string()))?,
                _ => balances.push(GenesisBalance {
                    address: addr,
                    coins: Coins::one(amount, &denom),
                }),
            }
        }
        let mut supply = Coins::new();
        for (d, a) in state::all_supply(ctx.store).map_err(ModuleError::from)? {
            supply
                .checked_add_coin(&d, a)
                .map_err(|e| ModuleError::new("sdk", 1, e.to_string()))?;
        }
        serde_json::to_value(BankGenesis { balances, supply })
            .map_err(|e| ModuleError::invalid_request(e.to_string()))
    }

    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        let decode_err = |what: &str, e: prost::DecodeError| {
            ModuleError::invalid_request(format!("{what} does not decode: {e}"))
        };
        match path {
            "/cosmos.bank.v1beta1.Query/Balance" => Some((|| {
                let req = bankpb::QueryBalanceRequest::decode(data)
                    .map_err(|e| decode_err("QueryBalanceRequest", e))?;
                let addr = auth::parse_address("address", &req.address).map_err(module_err)?;
                if req.denom.is_empty() {
                    return Err(ModuleError::invalid_request("denom must not be empty"));
                }
                let amount = read_balance(ctx, &addr, &req.denom)?;
                Ok(bankpb::QueryBalanceResponse {
                    balance: Some(PbCoin {
                        denom: req.denom,
                        amount: amount.to_string(),
                    }),
                }
                .encode_to_vec())
            })()),
            "/cosmos.bank.v1beta1.Query/AllBalances" => Some((|| {
                let req = bankpb::QueryAllBalancesRequest::decode(data)
                    .map_err(|e| decode_err("QueryAllBalancesRequest", e))?;
                let addr = auth::parse_address("address", &req.address).map_err(module_err)?;
                let coins = state::balances_at(ctx.store, &addr).map_err(ModuleError::from)?;
                Ok(bankpb::QueryAllBalancesResponse {
                    balances: to_pb_coins(&coins),
                    pagination: None,
                }
                .encode_to_vec())
            })()),
            "/cosmos.bank.v1beta1.Query/TotalSupply" => Some((|| {
                let supply = state::all_supply(ctx.store).map_err(ModuleError::from)?;
                Ok(bankpb::QueryTotalSupplyResponse {
                    supply: supply
                        .into_iter()
                        .map(|(denom, a)| PbCoin {
                            denom,
                            amount: a.to_string(),
                        })
                        .collect(),
                    pagination: None,
                }
                .encode_to_vec())
            })()),
            "/cosmos.bank.v1beta1.Query/SupplyOf" => Some((|| {
                let req = bankpb::QuerySupplyOfRequest::decode(data)
                    .map_err(|e| decode_err("QuerySupplyOfRequest", e))?;
                let k = state::supply_key(&req.denom);
                let amount: u128 = magnet_core::store::get_borsh(ctx.store, &k)
                    .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?
                    .unwrap_or(0);
                Ok(bankpb::QuerySupplyOfResponse {
                    amount: Some(PbCoin {
                        denom: req.denom,
                        amount: amount.to_string(),
                    }),
                }
                .encode_to_vec())
            })()),
            _ => None,
        }
    }
}

fn read_balance(ctx: &QueryCtx, addr: &Address, denom: &str) -> Result<u128, ModuleError> {
    let k = state::balance_key(addr, denom);
    Ok(magnet_core::store::get_borsh::<u128>(ctx.store, &k)
        .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?
        .unwrap_or(0))
}
