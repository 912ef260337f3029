//! BitNet-LM domain (phase-wise search) — see below.
