//! Kubernetes resource quantities (`500m`, `2`, `512Mi`, `1e3`, `1.5G`) as integers.

/// Parses a quantity into thousandths of its unit (`"500m"` → 500, `"2"` → 2000), rounding up.
pub fn parse_milli(s: &str) -> Option<i64> {
    scaled(s, 1000)
}

/// Parses a quantity into whole units (`"512Mi"` → 536870912), rounding up.
pub fn parse_units(s: &str) -> Option<i64> {
    scaled(s, 1)
}

/// Like [`parse_milli`], but a leading `-` is allowed: free capacity is negative when a tier is overcommitted.
pub fn parse_signed_milli(s: &str) -> Option<i64> {
    signed(s, parse_milli)
}

/// Like [`parse_units`], but a leading `-` is allowed.
pub fn parse_signed_units(s: &str) -> Option<i64> {
    signed(s, parse_units)
}

fn signed(s: &str, parse: fn(&str) -> Option<i64>) -> Option<i64> {
    match s.trim().strip_prefix('-') {
        Some(rest) if !rest.starts_with(['-', '+']) => parse(rest).map(|v| -v),
        Some(_) => None,
        None => parse(s),
    }
}

/// The value of `s` multiplied by `factor`, rounded up to an integer. `None` for malformed or negative input.
fn scaled(s: &str, factor: i128) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (int_part, frac_part) = match number.trim_start_matches('+').split_once('.') {
        Some((i, f)) => (i, f),
        None => (number.trim_start_matches('+'), ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.chars().all(|c| c.is_ascii_digit()) || !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if frac_part.len() > 18 || int_part.len() > 24 {
        return None;
    }
    // value = mantissa / 10^frac_len
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let mut denominator: i128 = 10i128.pow(frac_part.len() as u32);
    let (mul, div): (i128, i128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "u" => (1, 1_000_000),
        "n" => (1, 1_000_000_000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        e if e.starts_with('e') || e.starts_with('E') => {
            let exp: i32 = e[1..].parse().ok()?;
            if !(-18..=18).contains(&exp) {
                return None;
            }
            if exp >= 0 { (10i128.pow(exp as u32), 1) } else { (1, 10i128.pow((-exp) as u32)) }
        }
        _ => return None,
    };
    denominator = denominator.checked_mul(div)?;
    let numerator = mantissa.checked_mul(mul)?.checked_mul(factor)?;
    let value = (numerator + denominator - 1) / denominator;
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_quantities_for_overcommitted_free_capacity() {
        assert_eq!(parse_signed_milli("-2000m"), Some(-2000));
        assert_eq!(parse_signed_units("-1Gi"), Some(-(1 << 30)));
        assert_eq!(parse_signed_units("3"), Some(3));
        assert_eq!(parse_signed_milli("--1"), None);
        assert_eq!(parse_signed_milli("-+1"), None);
        assert_eq!(parse_milli("-1"), None, "requests are never negative");
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("0.1"), Some(100));
        assert_eq!(parse_milli("100u"), Some(1));
        assert_eq!(parse_milli("16"), Some(16000));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_units("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(parse_units("64Gi"), Some(64 * 1024 * 1024 * 1024));
        assert_eq!(parse_units("1G"), Some(1_000_000_000));
        assert_eq!(parse_units("1e3"), Some(1000));
        assert_eq!(parse_units("1.5Ki"), Some(1536));
        assert_eq!(parse_units("220"), Some(220));
    }

    #[test]
    fn malformed_quantities() {
        for bad in ["", "abc", "-1", "1Q", "1.2.3", "Mi", "1e99"] {
            assert_eq!(parse_units(bad), None, "{bad}");
        }
    }
}
