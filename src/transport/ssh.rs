//! SSH transport (placeholder until the ssh2 implementation lands).
