//! **The one place modules are registered**, and the router over them.
//!
//! The order of [`registered_modules`] is the execution order of every hook, and it is part of
//! consensus (changing it is a chain upgrade):
//!
//! 1. `begin_block` of every module, in this order;
//! 2. the block's txs, each message routed by its type URL to the module that declared it;
//! 3. `end_block` of every module, in this order (validator updates are merged, later wins);
//! 4. the epoch clock advances ([`magnet_core::epoch::advance`]); for each epoch that ended,
//!    `end_epoch(e)` of every module, in this order;
//! 5. the block's writes are hashed into the app hash.
//!
//! Genesis runs `init_genesis` in the same order, each with its own `app_state` section.
//!
//! To add a module: add ONE line to [`registered_modules`]. To give modules a new service,
//! add a field to `magnet_core::Services` and fill it in [`ModuleSet::services`].

use crate::error::TxError;
use magnet_core::services::ModuleRouter;
use magnet_core::{Address, Ctx, Module, ModuleError, Services};
use std::collections::BTreeMap;

/// Every module of the chain, in execution order (see the module docs).
pub fn registered_modules() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(magnet_core::epoch::EpochsModule),
        Box::new(crate::auth::AuthModule),
        Box::new(crate::bank::BankModule),
        Box::new(magnet_registry::Registry),
        Box::new(magnet_slashing::SlashingModule),
        Box::new(magnet_emission::EmissionModule),
        Box::new(magnet_contrib::ContribModule),
        Box::new(magnet_rewards::RewardsModule),
        Box::new(magnet_notary::NotaryModule),
        Box::new(magnet_data::DataModule),
        Box::new(magnet_jobs::JobsModule),
        Box::new(magnet_custody::CustodyModule),
        Box::new(magnet_gov::GovModule),
    ]
}

/// Why a module list cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two modules share a name.
    #[error("two modules are named {0:?}; module names must be unique")]
    DuplicateName(String),
    /// Two modules claim one message type.
    #[error("message type {url} is claimed by both {first} and {second}")]
    DuplicateMsg {
        /// Type URL.
        url: String,
        /// First claimant.
        first: String,
        /// Second claimant.
        second: String,
    },
}

/// The app's modules, with the message routing table; also the [`ModuleRouter`] service.
pub struct ModuleSet {
    list: Vec<Box<dyn Module>>,
    routes: BTreeMap<String, usize>,
}

impl ModuleSet {
    /// Build the routing table; fails on duplicate names or message types.
    pub fn new(list: Vec<Box<dyn Module>>) -> Result<ModuleSet, RegistryError> {
        let mut names = BTreeMap::new();
        let mut routes: BTreeMap<String, usize> = BTreeMap::new();
        for (i, m) in list.iter().enumerate() {
            if names.insert(m.name(), i).is_some() {
                return Err(RegistryError::DuplicateName(m.name().to_string()));
            }
            for url in m.msg_type_urls() {
                if let Some(prev) = routes.insert(url.to_string(), i) {
                    return Err(RegistryError::DuplicateMsg {
                        url: url.to_string(),
                        first: list[prev].name().to_string(),
                        second: m.name().to_string(),
                    });
                }
            }
        }
        Ok(ModuleSet { list, routes })
    }

    /// Modules in execution order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.list.iter().map(|m| m.as_ref())
    }

    /// The module that handles `type_url`.
    pub fn route(&self, type_url: &str) -> Option<&dyn Module> {
        self.routes.get(type_url).map(|i| self.list[*i].as_ref())
    }

    /// Every routable message type URL.
    pub fn msg_type_urls(&self) -> Vec<&str> {
        self.routes.keys().map(|s| s.as_str()).collect()
    }

    /// The services handed to every module for one block.
    pub fn services(&self) -> Services<'_> {
        let mut s = Services::new(&crate::bank::AccountingBank, self);
        s.registry = Some(&magnet_registry::Registry);
        s.slashing = Some(&magnet_slashing::SlashingModule);
        s.emission = Some(&magnet_emission::EmissionModule);
        s.contrib = Some(&magnet_contrib::ContribModule);
        s.jobs = Some(&magnet_jobs::JobsModule);
        s.notary = Some(&magnet_notary::NotaryModule);
        s.data = Some(&magnet_data::DataModule);
        s.custody = Some(&magnet_custody::CustodyModule);
        s.validators = Some(&crate::validators::AppValidators);
        s
    }

    fn by_name(&self, name: &str) -> Result<&dyn Module, ModuleError> {
        self.iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| ModuleError::invalid_request(format!("no module named {name:?}")))
    }
}

impl ModuleRouter for ModuleSet {
    fn module_names(&self) -> Vec<&'static str> {
        self.list.iter().map(|m| m.name()).collect()
    }
    fn validate_params(&self, module: &str, params: &serde_json::Value) -> Result<(), ModuleError> {
        self.by_name(module)?.validate_params(params)
    }
    fn set_params(
        &self,
        ctx: &mut Ctx,
        module: &str,
        params: &serde_json::Value,
    ) -> Result<(), ModuleError> {
        self.by_name(module)?.set_params(ctx, params)
    }
}

impl crate::tx::MsgValidator for ModuleSet {
    fn validate(&self, msg: &prost_types::Any) -> Option<Result<Address, TxError>> {
        self.route(&msg.type_url)
            .map(|m| m.validate_msg(msg).map_err(TxError::from))
    }
}
