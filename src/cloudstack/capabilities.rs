//! `listCapabilities`: the management server's release (`cloudstackversion`).

use super::client::unexpected;
use super::{ApiError, Client};
use crate::version::Version;

/// The management server's CloudStack version, as it reports it.
pub fn cloudstack_version(client: &Client) -> Result<Version, ApiError> {
    const COMMAND: &str = "listCapabilities";
    let response = client.call(COMMAND, &[])?;
    let text = response
        .get("capability")
        .and_then(|c| c.get("cloudstackversion"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| unexpected(COMMAND, "no capability.cloudstackversion in the answer"))?;
    Version::parse(text)
        .map_err(|e| unexpected(COMMAND, format!("cloudstackversion {text:?}: {e}")))
}
