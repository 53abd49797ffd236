//! `listCapabilities`: the management server's release (`cloudstackversion`).

use super::{ApiError, Client};
use crate::version::Version;

/// The management server's CloudStack version, as it reports it.
pub fn cloudstack_version(client: &Client) -> Result<Version, ApiError> {
    let response = client.call("listCapabilities", &[])?;
    let text = response
        .get("capability")
        .and_then(|c| c.get("cloudstackversion"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::Unexpected {
            command: "listCapabilities".into(),
            message: "no capability.cloudstackversion in the answer".into(),
        })?;
    Version::parse(text).map_err(|e| ApiError::Unexpected {
        command: "listCapabilities".into(),
        message: format!("cloudstackversion {text:?}: {e}"),
    })
}
