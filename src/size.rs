//! Sizes given on the command line, one parser for all: a number of MiB, or with a binary
//! unit (`5000`, `5000M`, `5000MiB`, `5G`, `4.5GiB`, `1T`), to whole MiB. `M`, `G` and `T`
//! mean MiB, GiB and TiB, as qemu-img and Packer read them; output prints sizes in MiB.

/// MiB in bytes.
pub const MIB: u64 = 1024 * 1024;

/// `text` as whole MiB; the error says what is wrong with it (clap adds the flag).
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let not_a_size = || format!("{text:?} is not a size (5000M, 5G)");
    if number.is_empty() {
        return Err(not_a_size());
    }
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be M, G or T (MiB, GiB, TiB)"
            ))
        }
    };
    let value: f64 = number.parse().map_err(|_| not_a_size())?;
    let mib = value * factor;
    if !mib.is_finite() || mib.fract() != 0.0 || mib < 1.0 || mib > u64::MAX as f64 {
        return Err(format!("{text:?} is not a whole number of MiB"));
    }
    Ok(mib as u64)
}

/// `bytes` in MiB with two decimals, for messages: `150.25 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / MIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_mib("5000"), Ok(5000));
        assert_eq!(parse_mib("5000M"), Ok(5000));
        assert_eq!(parse_mib("5G"), Ok(5120));
        assert_eq!(parse_mib("4.5GiB"), Ok(4608));
        assert_eq!(parse_mib("1T"), Ok(1024 * 1024));
        assert!(parse_mib("5X").is_err());
        assert!(parse_mib("abc").is_err());
        assert!(parse_mib("0.3M").is_err());
        assert!(parse_mib("-5G").is_err());
        assert_eq!(mib(3 * MIB / 2), "1.50 MiB");
    }
}
