//! The params glue every module shares: a module's `Params` is one JSON document under one
//! state key, parsed and validated the same way at genesis, on a governance change and on a
//! query. A module implements [`ModuleParams`] for its `Params` and puts
//! [`module_params_methods!`](crate::module_params_methods) in its `impl Module`.
//!
//! # Guarantees
//! A params document is stored only after it parsed and validated; an absent key reads as
//! the defaults; a stored document that no longer decodes is reported as corrupt state.

use crate::{KvStore, ModuleError};

/// A module's params document.
pub trait ModuleParams: serde::Serialize + serde::de::DeserializeOwned + Default {
    /// State key holding the JSON document.
    const KEY: &'static [u8];
    /// Validate a parsed document (the module's own error and code).
    fn check(&self) -> Result<(), ModuleError>;
    /// The module's error for a document that does not parse.
    fn invalid(msg: String) -> ModuleError;
}

/// Parse and validate a params document.
pub fn parse<P: ModuleParams>(v: &serde_json::Value) -> Result<P, ModuleError> {
    let p: P = serde_json::from_value(v.clone()).map_err(|e| P::invalid(e.to_string()))?;
    p.check()?;
    Ok(p)
}

/// The stored params (the defaults when none are stored).
pub fn load<P: ModuleParams>(store: &dyn KvStore) -> Result<P, ModuleError> {
    match store.get(P::KEY) {
        None => Ok(P::default()),
        Some(b) => {
            serde_json::from_slice(&b).map_err(|e| ModuleError::corrupt(P::KEY, &e.to_string()))
        }
    }
}

/// Store params (already validated).
pub fn save<P: ModuleParams>(store: &mut dyn KvStore, p: &P) {
    store.set(P::KEY, serde_json::to_vec(p).unwrap_or_default());
}

/// Genesis: parse `genesis.params` (defaults when absent), store and return them.
pub fn init_genesis<P: ModuleParams>(
    store: &mut dyn KvStore,
    genesis: &serde_json::Value,
) -> Result<P, ModuleError> {
    let p = match genesis.get("params") {
        Some(v) => parse::<P>(v)?,
        None => P::default(),
    };
    save(store, &p);
    Ok(p)
}

/// The stored params as JSON.
pub fn to_value<P: ModuleParams>(store: &dyn KvStore) -> Result<serde_json::Value, ModuleError> {
    json_value(&load::<P>(store)?)
}

/// Parse, validate and store a params document (governance).
pub fn set_from_json<P: ModuleParams>(
    store: &mut dyn KvStore,
    v: &serde_json::Value,
) -> Result<(), ModuleError> {
    let p = parse::<P>(v)?;
    save(store, &p);
    Ok(())
}

/// Serialize a query answer as JSON bytes.
pub fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ModuleError> {
    serde_json::to_vec(v).map_err(|e| ModuleError::invalid_request(e.to_string()))
}

/// Serialize a value as a JSON document.
pub fn json_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ModuleError> {
    serde_json::to_value(v).map_err(|e| ModuleError::invalid_request(e.to_string()))
}

/// The `params`, `validate_params` and `set_params` methods of a [`crate::Module`] impl
/// whose params type implements [`ModuleParams`].
#[macro_export]
macro_rules! module_params_methods {
    ($params:ty) => {
        fn params(&self, ctx: &$crate::QueryCtx) -> Result<serde_json::Value, $crate::ModuleError> {
            $crate::params::to_value::<$params>(ctx.store)
        }
        fn validate_params(&self, params: &serde_json::Value) -> Result<(), $crate::ModuleError> {
            $crate::params::parse::<$params>(params).map(|_| ())
        }
        fn set_params(
            &self,
            ctx: &mut $crate::Ctx,
            params: &serde_json::Value,
        ) -> Result<(), $crate::ModuleError> {
            $crate::params::set_from_json::<$params>(ctx.store_mut(), params)
        }
    };
}

/// Implement [`ModuleParams`] for a module's `Params` that has
/// `fn validate(&self) -> Result<(), Error>` (with `ModuleError: From<Error>`):
/// `impl_module_params!(Params, state::PARAMS_KEY, Error::InvalidParams)`.
#[macro_export]
macro_rules! impl_module_params {
    ($params:ty, $key:expr, $invalid:path) => {
        impl $crate::params::ModuleParams for $params {
            const KEY: &'static [u8] = $key;
            fn check(&self) -> Result<(), $crate::ModuleError> {
                self.validate().map_err(Into::into)
            }
            fn invalid(msg: String) -> $crate::ModuleError {
                $invalid(msg).into()
            }
        }
    };
}

/// The `msg_type_urls`, `validate_msg` and `deliver` methods of a [`crate::Module`] impl whose
/// crate has `msgs::type_urls()`, `msgs::check(any) -> Result<(Msg, Address), Error>` and
/// `handler::deliver(ctx, any) -> Result<MsgResult, Error>` (errors convert to
/// [`crate::ModuleError`]).
#[macro_export]
macro_rules! module_msg_methods {
    ($type_urls:path, $check:path, $deliver:path) => {
        fn msg_type_urls(&self) -> Vec<&'static str> {
            $type_urls()
        }
        fn validate_msg(
            &self,
            msg: &prost_types::Any,
        ) -> Result<$crate::Address, $crate::ModuleError> {
            Ok($check(msg)?.1)
        }
        fn deliver(
            &self,
            ctx: &mut $crate::Ctx,
            msg: &prost_types::Any,
        ) -> Result<$crate::MsgResult, $crate::ModuleError> {
            Ok($deliver(ctx, msg)?)
        }
    };
}

/// `init_genesis` and `export_genesis` of a [`crate::Module`] whose genesis section is only
/// `{"params": …}`; `$params` implements [`ModuleParams`].
#[macro_export]
macro_rules! module_params_genesis {
    ($params:ty) => {
        fn init_genesis(
            &self,
            ctx: &mut $crate::Ctx,
            genesis: &serde_json::Value,
        ) -> Result<(), $crate::ModuleError> {
            $crate::params::init_genesis::<$params>(ctx.store_mut(), genesis).map(|_| ())
        }
        fn export_genesis(
            &self,
            ctx: &$crate::QueryCtx,
        ) -> Result<serde_json::Value, $crate::ModuleError> {
            Ok(serde_json::json!({ "params": $crate::params::to_value::<$params>(ctx.store)? }))
        }
    };
}
