//! XenServer and XCP-ng hosts (REFERENCE 4), over SSH with the host's own `xe`.
//!
//! Up to date means: our content tag holding the ISO's sha256, and an ISO of the right size
//! at the profile's path. A rebuilt ISO with an unchanged version therefore still propagates.
//! CloudStack's own `vmops-version-<class>-<version>` tag is never written: CloudStack reads
//! it as "this host is set up" and then copies none of its host files (REFERENCE 4), so it
//! is CloudStack's to write. `--force` clears and rewrites only our tag;
//! `--reset-cloudstack-setup` removes CloudStack's, so that its next connect re-runs the full
//! host setup. Tags are changed only after the upload step has verified the ISO on the host;
//! the Tools SR is rescanned so tapdisk drops a cached image.

use super::{Extras, IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::profile;
use crate::transport::{quote, Transport};
use anyhow::{bail, Result};

pub struct XenServer {
    pub profile: profile::XenServer,
    pub extras: Extras,
}

/// CloudStack's version tags all start with this.
const VERSION_TAG_PREFIX: &str = "vmops-version-";
const MAX_TAGS: usize = 1000;

impl XenServer {
    fn xe(args: &[&str]) -> Vec<String> {
        std::iter::once("xe")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    fn xe_output(t: &mut dyn Transport, args: &[&str]) -> Result<String> {
        Ok(t.run(&quote::command(&Self::xe(args)))?.stdout)
    }

    /// This host's uuid: from /etc/xensource-inventory, else the only host `xe` knows.
    fn host_uuid(t: &mut dyn Transport) -> Result<String> {
        let script = "if [ -r /etc/xensource-inventory ]; then . /etc/xensource-inventory \
                      && printf '%s\\n' \"$INSTALLATION_UUID\"; else xe host-list --minimal; fi";
        let out = t.run(&quote::command(&["sh", "-c", script]))?.stdout;
        let uuids: Vec<&str> = out.trim().split(',').map(str::trim).collect();
        match uuids.as_slice() {
            [one] if is_uuid(one) => Ok(one.to_string()),
            [_, _, ..] if uuids.iter().all(|u| is_uuid(u)) => bail!(
                "{}: xe lists {} hosts (a pool) and /etc/xensource-inventory is missing: cannot tell which one this is",
                t.host(),
                uuids.len()
            ),
            _ => bail!("{}: xe did not print a host uuid: {:?}", t.host(), excerpt(&out)),
        }
    }

    fn tags(t: &mut dyn Transport, uuid: &str) -> Result<Vec<String>> {
        let uuid_arg = format!("uuid={uuid}");
        let out = Self::xe_output(t, &["host-param-get", &uuid_arg, "param-name=tags"])?;
        let line = out.trim_end_matches('\n');
        if line.contains('\n') {
            bail!(
                "{}: xe printed more than one line of tags: {:?}",
                t.host(),
                excerpt(&out)
            );
        }
        let tags: Vec<String> = line
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if tags.len() > MAX_TAGS
            || tags
                .iter()
                .any(|t| t.len() > 1024 || t.chars().any(char::is_control))
        {
            bail!(
                "{}: xe printed tags that make no sense: {:?}",
                t.host(),
                excerpt(&out)
            );
        }
        Ok(tags)
    }

    fn tools_sr(&self, t: &mut dyn Transport) -> Result<Option<String>> {
        for name in &self.profile.tools_sr_names {
            let label = format!("name-label={name}");
            let out = Self::xe_output(t, &["sr-list", &label, "--minimal"])?;
            if let Some(uuid) = out.trim().split(',').map(str::trim).find(|u| is_uuid(u)) {
                return Ok(Some(uuid.to_string()));
            }
        }
        Ok(None)
    }
}

impl Strategy for XenServer {
    fn plan(&self, t: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan> {
        let force = look.force;
        let uuid = Self::host_uuid(t)?;
        let tags = Self::tags(t, &uuid)?;
        let content_tag = format!("{}{}", self.profile.content_tag_prefix, iso.sha256);
        let on_host = t.stat(&self.profile.iso_path)?;
        let key_step = match &self.extras.private_key {
            Some(key) => super::deliver(t, key, &self.profile.private_key_path, 0o600)?,
            None => None,
        };

        let content_current = tags.contains(&content_tag);
        let size_right = on_host.is_some_and(|s| s.size == iso.size);
        // --verify: the tag says what we pushed, the hash says what is there now.
        let tampered = look.verify
            && content_current
            && size_right
            && t.sha256(&self.profile.iso_path)?.as_deref() != Some(iso.sha256.as_str());
        let cloudstack_tags: Vec<&String> = tags
            .iter()
            .filter(|t| t.starts_with(VERSION_TAG_PREFIX))
            .collect();
        let reset = self.extras.reset_cloudstack_setup && !cloudstack_tags.is_empty();
        let reason = if !content_current {
            if tags.iter().any(|t| self.is_ours(t)) {
                Reason::TagDiffers
            } else {
                Reason::NoTag
            }
        } else if !size_right {
            Reason::TaggedFileWrong(self.profile.iso_path.clone())
        } else if tampered {
            Reason::OtherContent(self.profile.iso_path.clone())
        } else if force {
            Reason::Forced
        } else if key_step.is_some() {
            Reason::PrivateKeyDiffers
        } else if reset {
            Reason::ResetCloudstackSetup
        } else {
            let version = iso.version.to_string();
            return Ok(Plan::up_to_date(Reason::Tagged(version), []));
        };
        let push_iso = force || !content_current || !size_right || tampered;
        let mut steps = Vec::new();
        let uuid_arg = format!("uuid={uuid}");
        let remove_tag = |tag: &str| Self::tag_step("host-param-remove", &uuid_arg, tag);
        let mut remaining: Vec<String> = tags.clone();
        if force {
            steps.extend(
                tags.iter()
                    .filter(|t| self.is_ours(t))
                    .map(|t| remove_tag(t)),
            );
            remaining.retain(|t| !self.is_ours(t));
        }
        if push_iso {
            steps.extend(self.push_steps(t, iso, &uuid_arg, &remaining, &content_tag)?);
        }
        if reset {
            // The seed's force procedure: without its tag, CloudStack's next connect to this
            // host re-runs its whole host setup (plugins, scripts, key, ISO).
            steps.extend(cloudstack_tags.iter().map(|t| remove_tag(t)));
        }
        steps.extend(key_step);
        Ok(Plan::push(force, reason, steps))
    }
}

impl XenServer {
    /// Upload, stale files, Tools SR rescan, then our tag: the stale ones of ours removed,
    /// the new one added.
    fn push_steps(
        &self,
        t: &mut dyn Transport,
        iso: &IsoInfo,
        uuid_arg: &str,
        remaining: &[String],
        content_tag: &String,
    ) -> Result<Vec<Step>> {
        let mut steps = vec![Step::upload_iso(
            iso,
            self.profile.iso_path.clone(),
            self.profile.iso_mode,
        )];
        for stale in &self.profile.stale_files {
            if t.stat(stale)?.is_some() {
                steps.push(Step::Remove {
                    path: stale.clone(),
                });
            }
        }
        if let Some(sr) = self.tools_sr(t)? {
            steps.push(Step::Run {
                argv: Self::xe(&["sr-scan", &format!("uuid={sr}")]),
            });
        }
        for tag in remaining
            .iter()
            .filter(|t| self.is_ours(t) && *t != content_tag)
        {
            steps.push(Self::tag_step("host-param-remove", uuid_arg, tag));
        }
        if !remaining.contains(content_tag) {
            steps.push(Self::tag_step("host-param-add", uuid_arg, content_tag));
        }
        Ok(steps)
    }

    /// Whether a host tag is one of our content tags.
    fn is_ours(&self, tag: &str) -> bool {
        tag.starts_with(&self.profile.content_tag_prefix)
    }

    /// `xe <verb> uuid=... param-name=tags param-key=<tag>`
    fn tag_step(verb: &str, uuid_arg: &str, tag: &str) -> Step {
        Step::Run {
            argv: Self::xe(&[
                verb,
                uuid_arg,
                "param-name=tags",
                &format!("param-key={tag}"),
            ]),
        }
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// The start of some output, for an error message.
fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("3f2a9c10-6f7b-4d1e-9a53-0c1b2d3e4f50"));
        assert!(!is_uuid("3f2a9c10-6f7b-4d1e-9a53-0c1b2d3e4f5"));
        assert!(!is_uuid("; rm -rf /"));
    }
}
