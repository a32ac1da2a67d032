//! Geo rules (docs/CONFIG.md, `[geo]`; docs/POLICY.md, "Country rules for
//! rooms"): which countries may connect, and which may join a room. The
//! server looks the country up in the operator's `.mmdb` once per
//! handshake; this decides.

use serde::{Deserialize, Serialize};

use crate::refusal::{Kind, Refusal};

/// What happens to an address the database does not place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// Served.
    #[default]
    Allow,
    /// Refused.
    Deny,
}

/// Where a connection comes from, as the geo rules see it: looked up once
/// at the handshake and carried by the session, so a `join` never looks
/// anything up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Locale {
    /// No country rule applies: `threat.allow` covers the address, or
    /// there is no `[geo]` database.
    #[default]
    Exempt,
    /// The database does not place the address.
    Unknown,
    /// An ISO 3166-1 alpha-2 code, upper case (two bytes: every idle
    /// session carries one).
    Country([u8; 2]),
}

impl Locale {
    /// The locale of a looked-up `country` (`None`: not placed). A code
    /// that is not two ASCII letters counts as not placed: the database is
    /// the operator's file, not to be trusted into an audit record.
    pub fn of(country: Option<&str>) -> Self {
        match country.map(str::as_bytes) {
            Some(&[a, b]) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Self::Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => Self::Unknown,
        }
    }

    /// The code, if placed.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Country(code) => std::str::from_utf8(code).ok(),
            Self::Exempt | Self::Unknown => None,
        }
    }
}

/// `list` checked as ISO 3166-1 alpha-2 codes (any case), upper-cased; the
/// error says which entry is not one.
pub fn iso_codes(list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .map(|c| match Locale::of(Some(c)) {
            Locale::Country(_) if c.len() == 2 => Ok(c.to_ascii_uppercase()),
            _ => Err(format!("`{c}` is not an ISO 3166-1 alpha-2 code")),
        })
        .collect()
}

/// Why a set of rules refuses a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss<'a> {
    /// Not placed, and `unknown = "deny"`.
    Unknown,
    /// In the deny list.
    Denied(&'a str),
    /// Not in the allow list.
    NotAllowed(&'a str),
}

/// `allow_countries` or `deny_countries` (ISO 3166-1 alpha-2, upper case),
/// and `unknown`: the `[geo]` section's, or a room rule's (with
/// `[geo] unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoRules {
    /// When non-empty, only these countries are served.
    pub allow: Vec<String>,
    /// These countries are refused.
    pub deny: Vec<String>,
    /// Addresses without a country.
    pub unknown: Unknown,
}

impl GeoRules {
    /// Whether the rules can refuse anything (else no lookup is needed).
    pub fn is_active(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty() || self.unknown == Unknown::Deny
    }

    /// Why the rules refuse `country` (`None`: not in the database), if
    /// they do.
    pub fn misses<'a>(&self, country: Option<&'a str>) -> Option<Miss<'a>> {
        match country {
            None if self.unknown == Unknown::Deny => Some(Miss::Unknown),
            None => None,
            Some(c) if self.deny.iter().any(|d| d.eq_ignore_ascii_case(c)) => Some(Miss::Denied(c)),
            Some(c) if !self.allow.is_empty() && !self.allow.iter().any(|a| a.eq_ignore_ascii_case(c)) => {
                Some(Miss::NotAllowed(c))
            }
            Some(_) => None,
        }
    }

    /// The refusal of a connection from `country` by the `[geo]` rules, if
    /// any: a ban's kind (403, the generic body, no score), the reason
    /// naming the country for the audit.
    pub fn judge(&self, country: Option<&str>) -> Option<Refusal> {
        let why = match self.misses(country)? {
            Miss::Unknown => "geo: country unknown (geo.unknown = deny)".to_owned(),
            Miss::Denied(c) => format!("geo: country {c} in geo.deny_countries"),
            Miss::NotAllowed(c) => format!("geo: country {c} not in geo.allow_countries"),
        };
        Some(Refusal::new(Kind::Banned, why))
    }

    /// The refusal of a `join` (or `create`, `recover`) by a room rule's
    /// countries, if any: the generic `forbidden`. The reason holds no
    /// `:` so the message audit keeps all of it, country included
    /// (`audit::message_refusal_detail`); the code is two letters checked
    /// by [`Locale::of`].
    pub fn judge_room(&self, locale: Locale) -> Result<(), Refusal> {
        let miss = match locale {
            Locale::Exempt => return Ok(()),
            Locale::Unknown => self.misses(None),
            Locale::Country(_) => self.misses(locale.code()),
        };
        let why = match miss {
            None => return Ok(()),
            Some(Miss::Unknown) => "room countries refuse country unknown (geo.unknown = deny)".to_owned(),
            Some(Miss::Denied(c)) => format!("room countries refuse country {c} (in the rule's deny_countries)"),
            Some(Miss::NotAllowed(c)) => {
                format!("room countries refuse country {c} (not in the rule's allow_countries)")
            }
        };
        Err(Refusal::new(Kind::Forbidden, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_deny_and_unknown() {
        let allow = GeoRules { allow: vec!["FR".into(), "DE".into()], deny: vec![], unknown: Unknown::Allow };
        assert!(allow.judge(Some("FR")).is_none());
        assert!(allow.judge(Some("US")).unwrap().reason.contains("US"));
        assert!(allow.judge(None).is_none());
        let deny = GeoRules { allow: vec![], deny: vec!["RU".into()], unknown: Unknown::Deny };
        assert!(deny.judge(Some("FR")).is_none());
        assert_eq!(deny.judge(Some("RU")).unwrap().kind, Kind::Banned);
        assert!(deny.judge(None).unwrap().reason.contains("unknown"));
        assert!(deny.is_active());
        assert!(!GeoRules { allow: vec![], deny: vec![], unknown: Unknown::Allow }.is_active());
    }

    #[test]
    fn a_locale_is_two_letters_or_unknown() {
        assert_eq!(Locale::of(Some("fr")), Locale::Country(*b"FR"));
        assert_eq!(Locale::of(Some("FR")).code(), Some("FR"));
        assert_eq!(Locale::of(None), Locale::Unknown);
        assert_eq!(Locale::of(Some("F:")), Locale::Unknown);
        assert_eq!(Locale::of(Some("FRA")), Locale::Unknown);
        assert_eq!(Locale::Exempt.code(), None);
    }

    #[test]
    fn room_rules_refuse_with_forbidden_naming_the_country_and_spare_the_exempt() {
        let rules = GeoRules { allow: vec!["FR".into()], deny: vec![], unknown: Unknown::Deny };
        assert!(rules.judge_room(Locale::Country(*b"FR")).is_ok());
        let refused = rules.judge_room(Locale::Country(*b"US")).unwrap_err();
        assert_eq!(refused.kind, Kind::Forbidden);
        assert!(refused.reason.contains("US") && !refused.reason.contains(':'), "{}", refused.reason);
        assert!(rules.judge_room(Locale::Unknown).unwrap_err().reason.contains("unknown"));
        assert!(rules.judge_room(Locale::Exempt).is_ok());
        let open = GeoRules { allow: vec![], deny: vec!["US".into()], unknown: Unknown::Allow };
        assert!(open.judge_room(Locale::Unknown).is_ok());
        assert!(open.judge_room(Locale::Country(*b"US")).is_err());
    }
}
