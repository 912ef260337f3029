//! Every way a transaction can fail, with its ABCI codespace and code.
//!
//! Codes in the `sdk` codespace are the Cosmos SDK's (`types/errors/errors.go`), so wallets and
//! explorers that switch on them keep working. A failure that has no Cosmos counterpart gets a
//! code in the `magnet` codespace, numbered from 100 so the bare ABCI `code` is distinct too.

use magnet_core::ModuleError;

/// Cosmos SDK `sdk` codespace codes used here.
pub mod codes {
    /// ErrInternal (state corruption, a bug).
    pub const INTERNAL: u32 = 1;
    /// ErrTxDecode.
    pub const TX_DECODE: u32 = 2;
    /// ErrInvalidSequence.
    pub const INVALID_SEQUENCE: u32 = 3;
    /// ErrUnauthorized.
    pub const UNAUTHORIZED: u32 = 4;
    /// ErrInsufficientFunds.
    pub const INSUFFICIENT_FUNDS: u32 = 5;
    /// ErrUnknownRequest.
    pub const UNKNOWN_REQUEST: u32 = 6;
    /// ErrInvalidAddress.
    pub const INVALID_ADDRESS: u32 = 7;
    /// ErrInvalidPubKey.
    pub const INVALID_PUBKEY: u32 = 8;
    /// ErrUnknownAddress.
    pub const UNKNOWN_ADDRESS: u32 = 9;
    /// ErrInvalidCoins.
    pub const INVALID_COINS: u32 = 10;
    /// ErrOutOfGas.
    pub const OUT_OF_GAS: u32 = 11;
    /// ErrMemoTooLarge.
    pub const MEMO_TOO_LARGE: u32 = 12;
    /// ErrInsufficientFee.
    pub const INSUFFICIENT_FEE: u32 = 13;
    /// ErrTooManySignatures.
    pub const TOO_MANY_SIGNATURES: u32 = 14;
    /// ErrNoSignatures.
    pub const NO_SIGNATURES: u32 = 15;
    /// ErrInvalidRequest.
    pub const INVALID_REQUEST: u32 = 18;
    /// ErrTxTooLarge.
    pub const TX_TOO_LARGE: u32 = 21;
    /// ErrKeyNotFound (queries: "not found").
    pub const KEY_NOT_FOUND: u32 = 22;
    /// ErrInvalidHeight.
    pub const INVALID_HEIGHT: u32 = 26;
    /// ErrInvalidChainID.
    pub const INVALID_CHAIN_ID: u32 = 28;
    /// ErrTxTimeoutHeight.
    pub const TX_TIMEOUT_HEIGHT: u32 = 30;
    /// ErrUnknownExtensionOptions.
    pub const UNKNOWN_EXTENSION_OPTIONS: u32 = 31;
    /// ErrWrongSequence.
    pub const WRONG_SEQUENCE: u32 = 32;
    /// ErrInvalidGasLimit.
    pub const INVALID_GAS_LIMIT: u32 = 41;
    /// ErrPanic (the Cosmos SDK's `sdk` 111222): the tx's execution panicked. The panic was
    /// caught, the writes of the failing stage were dropped and the block went on (ADR 0094).
    pub const PANIC: u32 = 111_222;
    /// `magnet` codespace: the signature bytes are not a canonical secp256k1 signature.
    pub const MALFORMED_SIGNATURE: u32 = 101;
    /// `magnet` codespace: unsupported sign mode or signer layout.
    pub const UNSUPPORTED_SIGNING: u32 = 102;
}

/// The Cosmos SDK codespace.
pub const SDK: &str = "sdk";
/// MAGNET's own codespace for tx-pipeline failures without a Cosmos counterpart.
pub const MAGNET: &str = "magnet";

/// A rejected or failed transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{codespace}/{code}: {log}")]
pub struct TxError {
    /// ABCI codespace.
    pub codespace: String,
    /// ABCI code (non-zero).
    pub code: u32,
    /// What went wrong and what to do.
    pub log: String,
}

impl TxError {
    /// An `sdk` codespace error.
    pub fn sdk(code: u32, log: impl Into<String>) -> TxError {
        TxError {
            codespace: SDK.to_string(),
            code,
            log: log.into(),
        }
    }
    /// A `magnet` codespace error.
    pub fn magnet(code: u32, log: impl Into<String>) -> TxError {
        TxError {
            codespace: MAGNET.to_string(),
            code,
            log: log.into(),
        }
    }
}

impl From<ModuleError> for TxError {
    fn from(e: ModuleError) -> Self {
        TxError {
            codespace: e.codespace,
            code: e.code,
            log: e.log,
        }
    }
}

impl From<magnet_core::OutOfGas> for TxError {
    fn from(e: magnet_core::OutOfGas) -> Self {
        ModuleError::from(e).into()
    }
}

impl From<magnet_core::BankError> for TxError {
    fn from(e: magnet_core::BankError) -> Self {
        ModuleError::from(e).into()
    }
}
