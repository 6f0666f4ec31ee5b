//! HAProxy's time format: an integer with an optional unit, milliseconds by
//! default (configuration manual, section 2.5 "Time format").

use std::time::Duration;

/// The largest timer HAProxy accepts: 2^31-1 ms, about 24.8 days.
const MAX_MS: u128 = i32::MAX as u128;

/// Parses `30s`, `500`, `1500us`, ... The error is a complete sentence.
pub(super) fn parse(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad = || {
        format!("invalid duration '{text}' (expected a number with an optional unit: us, ms, s, m, h or d)")
    };
    if number.is_empty() {
        return Err(bad());
    }
    let micros_per_unit: u128 = match unit {
        "us" => 1,
        "" | "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(bad()),
    };
    // HAProxy's wording: "timer overflow in argument ...".
    let too_big =
        || format!("timer overflow in '{text}' (the maximum is 2147483647 ms, about 24.8 days)");
    let value: u128 = number.parse().map_err(|_| too_big())?;
    let micros = value.checked_mul(micros_per_unit).ok_or_else(too_big)?;
    if micros > MAX_MS * 1_000 {
        return Err(too_big());
    }
    let micros = u64::try_from(micros).map_err(|_| too_big())?;
    Ok(Duration::from_micros(micros))
}
