//! Parsers for the spec's small languages: CPU ("500m", "2", "0.5"), memory ("512Mi",
//! "2Gi", "1G", "1048576") and durations ("90s", "30m", "2h", "1h30m", "7d").

/// CPU in thousandths of a core.
pub fn parse_cpu_millis(text: &str) -> Option<u64> {
    if let Some(millis) = text.strip_suffix('m') {
        return digits(millis)?.checked_mul(1).filter(|m| *m > 0);
    }
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole = if whole.is_empty() { 0 } else { digits(whole)? };
    let frac_millis = if frac.is_empty() {
        0
    } else {
        digits(frac)? * 10u64.pow(3 - frac.len() as u32)
    };
    whole
        .checked_mul(1000)?
        .checked_add(frac_millis)
        .filter(|m| *m > 0)
}

/// Formats thousandths of a core the way Kubernetes does.
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Memory in bytes.
pub fn parse_memory_bytes(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in UNITS {
        if let Some(number) = text.strip_suffix(suffix) {
            return digits(number)?.checked_mul(factor).filter(|b| *b > 0);
        }
    }
    digits(text).filter(|b| *b > 0)
}

/// A duration in whole seconds: one or more `<number><unit>` parts, unit s, m, h or d.
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut parts = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let factor = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value = digits(&number)?;
        total = total.checked_add(value.checked_mul(factor)?)?;
        number.clear();
        parts += 1;
    }
    if !number.is_empty() || parts == 0 {
        return None;
    }
    Some(total)
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("500m"), Some(500));
        assert_eq!(parse_cpu_millis("2"), Some(2000));
        assert_eq!(parse_cpu_millis("0.5"), Some(500));
        assert_eq!(parse_cpu_millis("1.25"), Some(1250));
        for bad in ["", "0", "0m", "m", "-1", "1.2345", "abc", "1 ", "."] {
            assert_eq!(parse_cpu_millis(bad), None, "{bad:?}");
        }
        assert_eq!(format_cpu_millis(500), "500m");
        assert_eq!(format_cpu_millis(2000), "2");
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_memory_bytes("2Gi"), Some(2 << 30));
        assert_eq!(parse_memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory_bytes("1048576"), Some(1 << 20));
        for bad in ["", "0", "Mi", "1.5Gi", "-1Gi", "1GB", "1 Gi"] {
            assert_eq!(parse_memory_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("30m"), Some(1800));
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("1h30m"), Some(5400));
        assert_eq!(parse_duration_secs("7d"), Some(604_800));
        for bad in ["", "90", "s", "1x", "1.5h", "-1s", "1h 30m"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad:?}");
        }
    }
}
