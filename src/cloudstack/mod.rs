//! The CloudStack API: request signing ([`sign`]), a blocking client with bounded time-outs
//! ([`client`]), and the two jobs systemvm does with it: an inventory from `listHosts`
//! ([`hosts`]) and restarting the system VMs and routers after a new ISO ([`restart`]).

pub mod client;
pub mod hosts;
pub mod restart;
pub mod sign;

pub use client::{ApiError, Client, ClientConfig, JobOutcome};
