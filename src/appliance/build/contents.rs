//! What goes into the template beyond the packages: our patch service (the minimal
//! template), or CloudStack's or Cosmic's template from their checkouts.

use crate::appliance::package_set::Services;
use std::path::PathBuf;

/// What makes the Debian system a system VM.
#[derive(Debug, Clone)]
pub enum Contents {
    /// The minimal template: our patch service from a payload of our shape.
    Minimal { payload: PathBuf },
    /// CloudStack's template from a CloudStack checkout.
    Cloudstack(Box<CloudstackTree>),
    /// Cosmic's template from a checkout of Cosmic's systemvm-packer.
    Cosmic(Box<CosmicTree>),
}

impl Contents {
    /// Which template this is, for the user.
    pub fn describe(&self) -> &'static str {
        match self {
            Contents::Minimal { .. } => "the minimal template: our patch service, not CloudStack's system VM template (give a CloudStack checkout with --payload for that)",
            Contents::Cloudstack(_) => "CloudStack's system VM template",
            Contents::Cosmic(_) => "Cosmic's system VM template",
        }
    }
}

/// A CloudStack checkout and what its generation's template does with services.
#[derive(Debug, Clone)]
pub struct CloudstackTree {
    pub tree: PathBuf,
    pub agent_jars_from: Option<PathBuf>,
    pub services: Services,
}

/// A systemvm-packer checkout and the services Cosmic's template sets up.
#[derive(Debug, Clone)]
pub struct CosmicTree {
    pub tree: PathBuf,
    pub services: Services,
}
