//! Geo rules (docs/CONFIG.md, `[geo]`): which countries may connect. The
//! server looks the country up in the operator's `.mmdb`; this decides.

use crate::refusal::{Kind, Refusal};

/// What happens to an address the database does not place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Served.
    Allow,
    /// Refused.
    Deny,
}

/// `allow_countries` or `deny_countries` (ISO 3166-1 alpha-2, upper case),
/// and `unknown`.
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

    /// The refusal for an address in `country` (`None`: not in the
    /// database), if any: a ban's kind (403, the generic body, no score),
    /// the reason naming the country for the audit.
    pub fn judge(&self, country: Option<&str>) -> Option<Refusal> {
        let refused = |why: String| Some(Refusal::new(Kind::Banned, why));
        match country {
            None if self.unknown == Unknown::Deny => refused("geo: country unknown (geo.unknown = deny)".into()),
            None => None,
            Some(c) if self.deny.iter().any(|d| d.eq_ignore_ascii_case(c)) => {
                refused(format!("geo: country {c} in geo.deny_countries"))
            }
            Some(c) if !self.allow.is_empty() && !self.allow.iter().any(|a| a.eq_ignore_ascii_case(c)) => {
                refused(format!("geo: country {c} not in geo.allow_countries"))
            }
            Some(_) => None,
        }
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
}
