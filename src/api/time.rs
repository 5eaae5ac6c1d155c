//! Times as the API server accepts them, clamped into the range the engine can compute with.
//!
//! A CRD field with `format: date-time` is validated by the API server's OpenAPI `date-time` check (kube-openapi
//! `strfmt.IsDateTime`): a calendar date `YYYY-MM-DD` (years 0000 to 9999), `T` (either case), `hh:mm:ss` with
//! hours up to 23 and minutes and seconds up to 59, an optional fraction, and `Z` (either case) or an offset
//! `±hh:mm`. The API server stores the string as it was written. jiff's timestamps end on 9999-12-30T22:00:00Z,
//! so a common "never" sentinel such as `9999-12-31T23:59:59Z` (a `reviewBy` far away) does not parse with
//! k8s-openapi's `Time`, and one such field would make the whole object unreadable. These functions accept
//! every string that check accepts, and clamp the instant into jiff's range (a deadline in year 9999 stays
//! far in the future; nothing is rounded towards "now").
//!
//! The `deserialize_with` helpers keep k8s-openapi's `Time` as the field type, so the CRD schema (`format:
//! date-time`) and every reader stay as they are.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Deserializer};

const SECONDS_PER_DAY: i128 = 86_400;

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i128 {
    let y = i128::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i128::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i128::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        _ => 28,
    }
}

/// `n` ASCII digits at the start of `s`, as a number.
fn digits(s: &[char], n: usize) -> Option<i64> {
    let part = s.get(..n)?;
    part.iter().try_fold(0i64, |acc, c| Some(acc * 10 + i64::from(c.to_digit(10)?)))
}

/// Parses a time the API server accepts for `format: date-time` into an instant clamped into jiff's range.
/// The error says what is wrong, for a message that names the field.
pub fn parse(s: &str) -> Result<Timestamp, String> {
    let bad = |why: &str| Err(format!("{s:?} is not an RFC 3339 date-time ({why})"));
    let lower = s.to_lowercase();
    // As the API server's check: the text is split at every `t`; the date comes before the first one and the
    // time of day between the first and the second.
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else { return bad("no T between date and time") };
    let date: Vec<char> = date.chars().collect();
    if date.len() != 10 || date[4] != '-' || date[7] != '-' {
        return bad("the date must be YYYY-MM-DD");
    }
    let (Some(y), Some(m), Some(d)) = (digits(&date, 4), digits(&date[5..], 2), digits(&date[8..], 2)) else {
        return bad("the date must be YYYY-MM-DD");
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return bad("no such calendar date");
    }
    let time: Vec<char> = time.chars().collect();
    if time.len() < 9 || time[2] != ':' || time[5] != ':' {
        return bad("the time must be hh:mm:ss");
    }
    let (Some(hh), Some(mm), Some(ss)) = (digits(&time, 2), digits(&time[3..], 2), digits(&time[6..], 2)) else {
        return bad("the time must be hh:mm:ss");
    };
    if hh > 23 || mm > 59 || ss > 59 {
        return bad("hours go to 23, minutes and seconds to 59");
    }
    let rest = &time[8..];
    // `(.[0-9]+)?(z|[+-]hh:mm)`: an optional fraction (any one separator character and digits), then the zone.
    let zone = |z: &[char]| -> Option<i128> {
        match z {
            ['z'] => Some(0),
            [sign @ ('+' | '-'), h1, h2, ':', m1, m2] => {
                let v = i128::from(digits(&[*h1, *h2], 2)? * 3600 + digits(&[*m1, *m2], 2)? * 60);
                Some(if *sign == '-' { -v } else { v })
            }
            _ => None,
        }
    };
    let fraction_then_zone = || {
        (2..rest.len()).rev().find_map(|end| {
            let fraction = &rest[1..end];
            if !fraction.iter().all(char::is_ascii_digit) {
                return None;
            }
            let offset = zone(&rest[end..])?;
            let nanos: i128 = fraction
                .iter()
                .take(9)
                .enumerate()
                .map(|(i, c)| i128::from(c.to_digit(10).unwrap_or(0)) * 10i128.pow(8 - i as u32))
                .sum();
            Some((nanos, offset))
        })
    };
    let Some((nanos, offset_s)) = zone(rest).map(|o| (0, o)).or_else(fraction_then_zone) else {
        return bad("it must end with an optional fraction, then Z or an offset ±hh:mm");
    };
    let local = days_from_civil(y, m, d) * SECONDS_PER_DAY + i128::from(hh * 3600 + mm * 60 + ss);
    let nanos_total = (local - offset_s) * 1_000_000_000 + nanos;
    let min = Timestamp::MIN.as_nanosecond();
    let max = Timestamp::MAX.as_nanosecond();
    Ok(Timestamp::from_nanosecond(nanos_total.clamp(min, max)).unwrap_or(if nanos_total < min {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    }))
}

/// `deserialize_with` for a required `Time`.
pub fn clamped<'de, D: Deserializer<'de>>(de: D) -> Result<Time, D::Error> {
    let s = String::deserialize(de)?;
    parse(&s).map(Time).map_err(serde::de::Error::custom)
}

/// `deserialize_with` for an optional `Time` (absent or `null` is `None`).
pub fn clamped_opt<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Time>, D::Error> {
    match Option::<String>::deserialize(de)? {
        None => Ok(None),
        Some(s) => parse(&s).map(|t| Some(Time(t))).map_err(serde::de::Error::custom),
    }
}

/// A condition as written, with a clamped `lastTransitionTime`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionIn {
    #[serde(deserialize_with = "clamped")]
    last_transition_time: Time,
    message: String,
    #[serde(default)]
    observed_generation: Option<i64>,
    reason: String,
    status: String,
    #[serde(rename = "type")]
    type_: String,
}

/// `deserialize_with` for a list of conditions whose `lastTransitionTime` may lie beyond jiff's range.
pub fn clamped_conditions<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Condition>, D::Error> {
    let list = Option::<Vec<ConditionIn>>::deserialize(de)?.unwrap_or_default();
    Ok(list
        .into_iter()
        .map(|c| Condition {
            last_transition_time: c.last_transition_time,
            message: c.message,
            observed_generation: c.observed_generation,
            reason: c.reason,
            status: c.status,
            type_: c.type_,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn ordinary_times_parse_as_jiff_does() {
        for s in [
            "2026-11-28T09:00:00Z",
            "2026-11-28T09:00:00.5Z",
            "2026-11-28T09:00:00.123456789Z",
            "2026-11-28T10:00:00+01:00",
            "2026-11-28T04:30:00-04:30",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(parse(s), Ok(ts(s)), "{s}");
        }
        assert_eq!(parse("2026-11-28t09:00:00z"), Ok(ts("2026-11-28T09:00:00Z")), "either case");
        assert_eq!(parse("2026-11-28T09:00:00,25Z"), Ok(ts("2026-11-28T09:00:00.25Z")), "any fraction separator");
    }

    #[test]
    fn far_future_sentinels_clamp_to_the_last_instant() {
        for s in ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59"] {
            assert_eq!(parse(s), Ok(Timestamp::MAX), "{s}");
        }
        assert!(parse("9999-12-30T21:59:59Z").is_ok_and(|t| t < Timestamp::MAX), "inside the range: exact");
    }

    #[test]
    fn what_the_api_server_refuses_is_refused() {
        for s in [
            "",
            "tomorrow",
            "2026-11-28",
            "2026-11-28 09:00:00Z",
            "2026-11-28T9:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T09:60:00Z",
            "2026-11-28T09:00:60Z",
            "2026-02-30T09:00:00Z",
            "2025-02-29T09:00:00Z",
            "2026-13-01T09:00:00Z",
            "2026-11-28T09:00:00",
            "2026-11-28T09:00:00+0100",
            "2026-11-28T09:00:00.Z",
            "10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
        ] {
            assert!(parse(s).is_err(), "{s:?} must be refused");
        }
        let e = parse("soon").expect_err("refused");
        assert!(e.contains("\"soon\"") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn deserializers_name_the_field_through_serde() {
        #[derive(Deserialize, Debug)]
        #[serde(rename_all = "camelCase")]
        struct S {
            #[serde(deserialize_with = "clamped")]
            review_by: Time,
            #[serde(default, deserialize_with = "clamped_opt")]
            seen: Option<Time>,
            #[serde(default, deserialize_with = "clamped_conditions")]
            conditions: Vec<Condition>,
        }
        let s: S = serde_json::from_value(serde_json::json!({
            "reviewBy": "9999-12-31T23:59:59Z",
            "conditions": [{"type": "Reachable", "status": "True", "reason": "R", "message": "m",
                "lastTransitionTime": "9999-12-31T23:59:59Z"}]
        }))
        .expect("accepted");
        assert_eq!(s.review_by.0, Timestamp::MAX);
        assert_eq!(s.seen, None);
        assert_eq!(s.conditions[0].last_transition_time.0, Timestamp::MAX);
        let e =
            serde_path_to_error::deserialize::<_, S>(serde_json::json!({"reviewBy": "never"})).expect_err("refused");
        assert_eq!(e.path().to_string(), "reviewBy");
    }
}
