//! # magnet-app — the MAGNET ABCI 2.0 application
//!
//! (Being built: see issue 2.) Wires the modules in `modules/` behind CometBFT's ABCI.
