//! CloudStack and Cosmic versions, and the names derived from them.
//!
//! One ordering serves both schemes: dotted numbers compared part by part (missing parts are
//! zero), so the Cosmic date version `16.4.3` sorts above the legacy `4.6.0` exactly as
//! `minreq.sysvmtemplate.version` expects. A qualifier (`4.5.0-SNAPSHOT`) sorts below the
//! release it precedes, as in Maven.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a version: expected dotted numbers such as 4.16.0.0, 4.5.0-SNAPSHOT or 16.4.3"
)]
pub struct ParseVersionError(pub String);

/// The digest a release compares `cloud-scripts.tgz` by (REFERENCE 2): CloudStack md5 up to
/// 4.21 and sha512 from 4.22; Cosmic sha512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha512,
}

impl Digest {
    /// The name the bundled scripts read (`md5`, `sha512`), as in `md5sum`/`sha512sum`.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha512 => "sha512",
        }
    }
}

#[derive(Debug, Clone, Eq)]
pub struct Version {
    text: String,
    numbers: Vec<u64>,
    qualifier: Option<String>,
}

impl Version {
    /// Parse `4.16.0.0`, `4.5.0-SNAPSHOT`, `16.4.3`.
    pub fn parse(text: &str) -> Result<Version, ParseVersionError> {
        let err = || ParseVersionError(text.to_string());
        let (numeric, qualifier) = match text.split_once('-') {
            Some((n, q)) => (n, Some(q)),
            None => (text, None),
        };
        // At most nine digits a part: no sign, no overflow.
        let digits = |p: &str| p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
        let number = |p: &str| p.parse::<u64>().ok().filter(|_| digits(p));
        let numbers: Option<Vec<u64>> = numeric.split('.').map(number).collect();
        let numbers = numbers.ok_or_else(err)?;
        let word = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
        let qualifier_ok = |q: &str| !q.is_empty() && q.len() <= 32 && q.bytes().all(word);
        if numbers.len() > 6 || !qualifier.is_none_or(qualifier_ok) {
            return Err(err());
        }
        Ok(Version {
            text: text.to_string(),
            numbers,
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// The Cosmic date version of a timestamp: `YY.M.D`, no leading zeros (`16.4.3`).
    pub fn date(epoch_secs: i64) -> Version {
        let c = crate::epoch::civil(epoch_secs);
        let text = format!("{}.{}.{}", c.year.rem_euclid(100), c.month, c.day);
        Version {
            numbers: vec![c.year.rem_euclid(100) as u64, c.month.into(), c.day.into()],
            qualifier: None,
            text,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The dotted numbers, `[4, 16, 0, 0]` for `4.16.0.0`.
    pub fn parts(&self) -> &[u64] {
        &self.numbers
    }

    /// `(major, minor)`, missing parts as zero.
    pub fn major_minor(&self) -> (u64, u64) {
        let part = |i: usize| self.numbers.get(i).copied().unwrap_or(0);
        (part(0), part(1))
    }

    /// A Cosmic date version (`16.4.3`), as opposed to a CloudStack one (`4.16.0.0`): Cosmic
    /// dates start at 16 and CloudStack majors are single digits.
    pub fn is_date(&self) -> bool {
        self.major_minor().0 >= 14
    }

    /// The digest this release's system VMs and management server compare.
    pub fn signature_digest(&self) -> Digest {
        match self.major_minor() {
            _ if self.is_date() => Digest::Sha512,
            (0..=3, _) | (4, 0..=21) => Digest::Md5,
            _ => Digest::Sha512,
        }
    }

    /// True when `self` satisfies `minreq.sysvmtemplate.version = minimum`.
    pub fn satisfies_minimum(&self, minimum: &Version) -> bool {
        self >= minimum
    }

    /// VMware and Hyper-V secondary storage name: `systemvm-<version>.iso`, `:` made `-`.
    pub fn secondary_storage_file_name(&self) -> String {
        self.file_name("systemvm-{version}.iso")
    }

    /// A file name from a template with `{version}`, `:` made `-` as CloudStack does.
    pub fn file_name(&self, template: &str) -> String {
        template.replace("{version}", &self.text.replace(':', "-"))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let part = |v: &Version, i: usize| v.numbers.get(i).copied().unwrap_or(0);
        let len = self.numbers.len().max(other.numbers.len());
        let mut numbers = (0..len).map(|i| part(self, i).cmp(&part(other, i)));
        if let Some(unequal) = numbers.find(|o| o.is_ne()) {
            return unequal;
        }
        // ISO volume ids are upper case, so qualifiers compare without case.
        let upper = |q: &Option<String>| q.as_ref().map(|s| s.to_ascii_uppercase());
        match (upper(&self.qualifier), upper(&other.qualifier)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn cosmic_minimum_table() {
        // REFERENCE 8 / the Cosmic README: minreq 16.4.1.
        let min = v("16.4.1");
        for newer in ["16.4.1", "16.4.3", "16.5.12", "16.7.1"] {
            assert!(v(newer).satisfies_minimum(&min), "{newer} should pass");
        }
        for older in ["4.6.0", "16.3.22", "16.2.1"] {
            assert!(!v(older).satisfies_minimum(&min), "{older} should fail");
        }
    }

    #[test]
    fn cloudstack_ordering() {
        assert!(v("4.2.1.1") > v("4.2.1.0"));
        assert!(v("4.3.1") > v("4.3.0"));
        assert!(v("4.16.0.0") > v("4.5.0"));
        assert!(v("4.5.0-SNAPSHOT") < v("4.5.0"));
        assert!(v("4.5.0-SNAPSHOT") > v("4.4.9"));
        assert_eq!(v("4.16.0"), v("4.16.0.0"));
        assert_eq!(v("4.5.0-snapshot"), v("4.5.0-SNAPSHOT"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "4..1",
            "a.b",
            "4.16 ",
            "4.16/0",
            "-SNAPSHOT",
            "4.1-",
            "1.2.3-$(x)",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn date_versions_have_no_leading_zeros() {
        // 2016-04-03
        assert_eq!(Version::date(1_459_713_078).as_str(), "16.4.3");
        // 2026-11-22
        assert_eq!(Version::date(1_795_305_600).as_str(), "26.11.22");
    }

    #[test]
    fn digests_follow_the_release() {
        assert_eq!(v("4.16.0.0").signature_digest(), Digest::Md5);
        assert_eq!(v("4.21.9.0").signature_digest(), Digest::Md5);
        assert_eq!(v("4.22.0.0").signature_digest(), Digest::Sha512);
        assert_eq!(v("16.4.3").signature_digest(), Digest::Sha512);
    }

    #[test]
    fn derived_names() {
        assert_eq!(
            v("4.3.0.0").secondary_storage_file_name(),
            "systemvm-4.3.0.0.iso"
        );
    }
}
