//! The CloudStack API: request signing ([`sign`]), a blocking client with bounded time-outs
//! ([`client`]), and what systemvm does with it: an inventory from `listHosts`
//! ([`hosts`]), restarting the system VMs and routers after a new ISO ([`restart`]), and the
//! management server's release ([`capabilities`]).

pub mod capabilities;
pub mod client;
pub mod hosts;
pub mod restart;
pub mod sign;

pub use client::{ApiError, Client, ClientConfig, JobOutcome};
