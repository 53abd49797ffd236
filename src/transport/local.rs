//! Local directory transport (placeholder).
