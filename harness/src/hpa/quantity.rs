//! CPU quantities in millicores, parsed the way Kubernetes parses them.
//!
//! The HPA controller works in milli-units: it reads every request and every usage with
//! `Quantity.MilliValue()`, which rounds up to the next millicore. [`Cpu`] keeps exactly
//! that value, so the arithmetic in this module matches the controller's to the millicore
//! (`0.1`, `100m` and `100000000n` are all 100m; `1n` is 1m).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a CPU quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not follow the Kubernetes quantity grammar.
    #[error(
        "`{0}` is not a Kubernetes quantity (expected a number with an optional suffix such as `100m`, `0.5` or `2`)"
    )]
    Syntax(String),
    /// CPU cannot be negative.
    #[error("`{0}` is negative; CPU quantities must be zero or more")]
    Negative(String),
    /// The value does not fit in 64 bits of millicores.
    #[error("`{0}` is too large to be a CPU quantity")]
    Overflow(String),
}

/// A CPU amount in millicores (`1000` is one core).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpu(u64);

impl Cpu {
    /// Zero CPU.
    pub const ZERO: Cpu = Cpu(0);

    /// A value in millicores.
    pub const fn millis(m: u64) -> Cpu {
        Cpu(m)
    }

    /// The value in millicores.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Parses a Kubernetes quantity (`100m`, `0.25`, `2`, `1500000n`, `1e3m`), rounding
    /// up to whole millicores as `Quantity.MilliValue()` does.
    pub fn parse(text: &str) -> Result<Cpu, QuantityError> {
        let trimmed = text.trim();
        let (number, suffix) =
            split_suffix(trimmed).ok_or_else(|| QuantityError::Syntax(text.into()))?;
        let decimal = Decimal::parse(number).ok_or_else(|| QuantityError::Syntax(text.into()))?;
        if decimal.negative && decimal.digits != 0 {
            return Err(QuantityError::Negative(text.into()));
        }
        let scale = Scale::parse(suffix).ok_or_else(|| QuantityError::Syntax(text.into()))?;
        decimal
            .to_millis(scale)
            .map(Cpu)
            .ok_or_else(|| QuantityError::Overflow(text.into()))
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Cpu) -> Cpu {
        Cpu(self.0.saturating_sub(other.0))
    }

    /// `self + other`, saturating at the largest value.
    pub fn saturating_add(self, other: Cpu) -> Cpu {
        Cpu(self.0.saturating_add(other.0))
    }

    /// `percent`% of this value, rounded up to the next millicore.
    pub fn percent_ceil(self, percent: u32) -> Cpu {
        Cpu((u128::from(self.0) * u128::from(percent))
            .div_ceil(100)
            .min(u128::from(u64::MAX)) as u64)
    }

    /// `percent`% of this value in exact (fractional) millicores, for display.
    pub fn percent_exact(self, percent: u32) -> f64 {
        self.0 as f64 * f64::from(percent) / 100.0
    }

    /// This value as a percentage of `of`, rounded down (the HPA's integer utilization).
    pub fn utilization_of(self, of: Cpu) -> Option<u64> {
        (of.0 > 0)
            .then(|| (u128::from(self.0) * 100 / u128::from(of.0)).min(u128::from(u64::MAX)) as u64)
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cpu, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cpu::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::iter::Sum for Cpu {
    fn sum<I: Iterator<Item = Cpu>>(iter: I) -> Cpu {
        iter.fold(Cpu::ZERO, Cpu::saturating_add)
    }
}

/// Splits `"1.5Gi"` into `("1.5", "Gi")`: the suffix starts at the first character that
/// cannot be part of a number. An exponent (`1e3`) is a suffix too.
fn split_suffix(text: &str) -> Option<(&str, &str)> {
    let start = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    Some((&text[..start], &text[start..]))
}

/// The power a suffix multiplies by.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// `10^n`.
    Decimal(i32),
    /// `1024^n`.
    Binary(u32),
}

impl Scale {
    fn parse(suffix: &str) -> Option<Scale> {
        let scale = match suffix {
            "n" => Scale::Decimal(-9),
            "u" => Scale::Decimal(-6),
            "m" => Scale::Decimal(-3),
            "" => Scale::Decimal(0),
            "k" => Scale::Decimal(3),
            "M" => Scale::Decimal(6),
            "G" => Scale::Decimal(9),
            "T" => Scale::Decimal(12),
            "P" => Scale::Decimal(15),
            "E" => Scale::Decimal(18),
            "Ki" => Scale::Binary(1),
            "Mi" => Scale::Binary(2),
            "Gi" => Scale::Binary(3),
            "Ti" => Scale::Binary(4),
            "Pi" => Scale::Binary(5),
            "Ei" => Scale::Binary(6),
            exponent => {
                let rest = exponent.strip_prefix(['e', 'E'])?;
                let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Scale::Decimal(rest.parse().ok()?)
            }
        };
        Some(scale)
    }
}

/// A decimal number as integer digits and a count of fraction digits.
struct Decimal {
    negative: bool,
    digits: u128,
    fraction_digits: u32,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let all = whole.bytes().chain(fraction.bytes());
        let mut digits: u128 = 0;
        for b in all {
            if !b.is_ascii_digit() {
                return None;
            }
            digits = digits.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        }
        Some(Decimal {
            negative,
            digits,
            fraction_digits: u32::try_from(fraction.len()).ok()?,
        })
    }

    /// The value in millis, rounded up.
    fn to_millis(&self, scale: Scale) -> Option<u64> {
        let value = match scale {
            Scale::Decimal(exp) => {
                // digits * 10^(exp + 3 - fraction_digits)
                let power = exp + 3 - i32::try_from(self.fraction_digits).ok()?;
                if power >= 0 {
                    self.digits
                        .checked_mul(10u128.checked_pow(power.unsigned_abs())?)?
                } else {
                    match 10u128.checked_pow(power.unsigned_abs()) {
                        Some(divisor) => self.digits.div_ceil(divisor),
                        // Anything this small is below one milli: it rounds up to 1 unless zero.
                        None => u128::from(self.digits > 0),
                    }
                }
            }
            Scale::Binary(n) => {
                let multiplier = 1024u128.checked_pow(n)?.checked_mul(1000)?;
                self.digits
                    .checked_mul(multiplier)?
                    .div_ceil(10u128.checked_pow(self.fraction_digits)?)
            }
        };
        u64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_milli_value() {
        let cases = [
            ("100m", 100),
            ("0.1", 100),
            ("1", 1000),
            ("2", 2000),
            ("1.5", 1500),
            ("250m", 250),
            ("100000000n", 100),
            ("1n", 1),
            ("1u", 1),
            ("1500u", 2),
            ("0", 0),
            ("0m", 0),
            ("1e3", 1_000_000),
            ("1e-3", 1),
            ("1k", 1_000_000),
            ("1Ki", 1_024_000),
            ("0.5Ki", 512_000),
            (".5", 500),
            ("+2", 2000),
            (" 10m ", 10),
            ("12345678n", 13),
        ];
        for (text, millis) in cases {
            assert_eq!(Cpu::parse(text), Ok(Cpu::millis(millis)), "{text}");
        }
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "m", "abc", "1.2.3", "10 m", "1x", "1e", "--1", "1mi", "1e3m",
        ] {
            assert!(
                matches!(Cpu::parse(bad), Err(QuantityError::Syntax(_))),
                "{bad:?} parsed"
            );
        }
        assert!(matches!(
            Cpu::parse("-100m"),
            Err(QuantityError::Negative(_))
        ));
        assert!(matches!(Cpu::parse("1E"), Err(QuantityError::Overflow(_))));
        assert!(matches!(
            Cpu::parse("99999999999999999999"),
            Err(QuantityError::Overflow(_))
        ));
    }

    #[test]
    fn percentages_round_like_the_controller() {
        let r = Cpu::millis(200);
        assert_eq!(r.percent_ceil(70), Cpu::millis(140));
        assert_eq!(Cpu::millis(155).percent_ceil(70), Cpu::millis(109));
        assert_eq!(Cpu::millis(155).percent_exact(70), 108.5);
        assert_eq!(Cpu::millis(130).utilization_of(r), Some(65));
        assert_eq!(Cpu::millis(155).utilization_of(r), Some(77));
        assert_eq!(Cpu::millis(1).utilization_of(Cpu::ZERO), None);
    }

    #[test]
    fn displays_in_millicores() {
        assert_eq!(Cpu::millis(140).to_string(), "140m");
        assert_eq!(serde_json::to_string(&Cpu::millis(80)).unwrap(), "\"80m\"");
        assert_eq!(
            [Cpu::millis(100), Cpu::millis(100)]
                .into_iter()
                .sum::<Cpu>(),
            Cpu::millis(200)
        );
    }
}
