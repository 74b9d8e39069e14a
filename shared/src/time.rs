//! Timestamps. Stored with a fixed six-digit fraction so that they sort as strings in keys;
//! rendered the way Django REST framework does (`…:15.494323Z`, no fraction when it is zero).

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

/// The sortable storage form: `2026-11-22T18:48:15.494323Z`.
pub fn storage(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The wire form: microseconds only when non-zero.
pub fn wire(ts: &Timestamp) -> String {
    if ts.timestamp_subsec_micros() == 0 {
        ts.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        ts.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

/// Parses what DRF accepts for a datetime field: `YYYY-MM-DD`, or ISO 8601 with an optional
/// fraction and an optional offset (`Z`, `+HH:MM`); a naive time is taken as UTC.
pub fn parse_input(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|naive| naive.and_utc());
    }
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z"] {
        if let Ok(with_offset) = DateTime::parse_from_str(text, format) {
            return Some(with_offset.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    None
}

/// The wire form of a stored timestamp.
pub fn wire_stored(stored: &str) -> String {
    parse_stored(stored)
        .map(|t| wire(&t))
        .unwrap_or_else(|| stored.to_owned())
}

/// Parses the storage form (or any RFC 3339 text) back.
pub fn parse_stored(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_drops_a_zero_fraction() {
        let ts = parse_input("2031-01-01").unwrap();
        assert_eq!(wire(&ts), "2031-01-01T00:00:00Z");
        let ts = parse_input("2026-11-22T18:48:15.494323Z").unwrap();
        assert_eq!(wire(&ts), "2026-11-22T18:48:15.494323Z");
        assert_eq!(
            storage(&parse_input("2030-01-01T00:00:00").unwrap()),
            "2030-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn accepts_the_client_forms() {
        for text in [
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01T02:00:00+02:00",
            "2030-01-01T00:00:00.000Z",
            "2030-01-01T00:00",
        ] {
            assert_eq!(
                parse_input(text).map(|t| wire(&t)).as_deref(),
                Some("2030-01-01T00:00:00Z"),
                "{text}"
            );
        }
        for bad in ["", "tomorrow", "2030-13-01", "2030-01-01T25:00:00"] {
            assert_eq!(parse_input(bad), None, "{bad}");
        }
    }

    #[test]
    fn storage_form_sorts_chronologically() {
        let earlier = storage(&parse_input("2026-01-01T00:00:00Z").unwrap());
        let later = storage(&parse_input("2026-01-01T00:00:00.5Z").unwrap());
        assert!(earlier < later);
    }
}
