//! The instant a read is as of.

use chrono::{DateTime, Utc};

/// When a read is as of: now, or an earlier instant the caller named (`asOf`). Reads of the
/// present take each return's current version from a flag kept at every write; reads of the
/// past work it out from the versions' timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Now,
    At(DateTime<Utc>),
}

impl AsOf {
    /// `asOf` as given: none, or an instant not before `now`, is now (nothing is stamped in
    /// the future, so both read the same versions).
    pub fn given(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        match at {
            Some(t) if t < now => AsOf::At(t),
            _ => AsOf::Now,
        }
    }

    /// The instant itself, for comparisons with stored timestamps.
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            AsOf::Now => Utc::now(),
            AsOf::At(t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_past_is_past_and_the_rest_is_now() {
        let now = Utc::now();
        let earlier = now - chrono::Duration::seconds(1);
        assert_eq!(AsOf::given(None, now), AsOf::Now);
        assert_eq!(AsOf::given(Some(now), now), AsOf::Now);
        assert_eq!(
            AsOf::given(Some(now + chrono::Duration::days(1)), now),
            AsOf::Now
        );
        assert_eq!(AsOf::given(Some(earlier), now), AsOf::At(earlier));
    }
}
