//! `route.client_cert`: which client certificates a route lets through, by SAN or subject.
//!
//! The handshake already verified the chain against `server.client_ca` (a request without a valid
//! certificate never reaches a route); this narrows a route to some of those clients, as
//! `allow_ips` narrows it to some networks. Compiled at load, matched per request.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Subject attributes a `subjects` entry may name, with their OIDs (RFC 4519).
const ATTRIBUTES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
];

/// The compiled rule: any SAN in `sans`, or a subject holding every attribute of one entry.
#[derive(Debug, Clone)]
pub struct ClientCertRule {
    /// Normalised: DNS names lower case, IP addresses in canonical form, URIs and e-mails as given.
    sans: Vec<String>,
    /// Each entry: (OID, value) pairs that must all be in the subject.
    subjects: Vec<Vec<(&'static str, String)>>,
}

impl ClientCertRule {
    /// Compiles the config lists; the error says which entry is wrong and why.
    pub fn new(sans: &[String], subjects: &[String]) -> Result<ClientCertRule, String> {
        if sans.is_empty() && subjects.is_empty() {
            return Err("give at least one of sans or subjects".into());
        }
        if let Some(empty) = sans.iter().find(|s| s.trim().is_empty()) {
            return Err(format!("sans: {empty:?} is empty"));
        }
        let subjects = subjects
            .iter()
            .map(|s| subject(s))
            .collect::<Result<_, _>>()?;
        Ok(ClientCertRule {
            sans: sans.iter().map(|s| normalise(s.trim())).collect(),
            subjects,
        })
    }

    /// Whether the DER certificate passes; one that does not parse never does.
    pub fn allows(&self, der: &[u8]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return false;
        };
        self.san_matches(&cert) || self.subject_matches(&cert)
    }

    fn san_matches(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok(Some(ext)) = cert.subject_alternative_name() else {
            return false;
        };
        ext.value
            .general_names
            .iter()
            .filter_map(san_text)
            .any(|name| self.sans.contains(&name))
    }

    fn subject_matches(&self, cert: &X509Certificate<'_>) -> bool {
        let held: Vec<(String, &str)> = cert
            .subject()
            .iter_attributes()
            .filter_map(|a| Some((a.attr_type().to_id_string(), a.as_str().ok()?)))
            .collect();
        self.subjects.iter().any(|want| {
            want.iter()
                .all(|(oid, v)| held.iter().any(|(o, h)| o == oid && h == v))
        })
    }
}

/// `"CN=relay,O=Example"` → its (OID, value) pairs. Values cannot contain a comma.
fn subject(entry: &str) -> Result<Vec<(&'static str, String)>, String> {
    let pairs = entry.split(',').map(str::trim).filter(|p| !p.is_empty());
    let parsed = pairs
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("subjects: {pair:?} is not NAME=value"))?;
            let oid = ATTRIBUTES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
                .map(|(_, oid)| *oid)
                .ok_or_else(|| {
                    let known: Vec<_> = ATTRIBUTES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "subjects: unknown attribute {name:?} (use {})",
                        known.join(", ")
                    )
                })?;
            Ok((oid, value.trim().to_owned()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if parsed.is_empty() {
        return Err(format!("subjects: {entry:?} names no attribute"));
    }
    Ok(parsed)
}

/// A SAN as the config spells it: IPs canonical, DNS names lower case, the rest exact.
fn normalise(s: &str) -> String {
    match s.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) if s.contains(':') || s.contains('@') => s.to_owned(),
        Err(_) => s.to_ascii_lowercase(),
    }
}

fn san_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
        GeneralName::URI(u) => Some((*u).to_owned()),
        GeneralName::RFC822Name(e) => Some((*e).to_owned()),
        GeneralName::IPAddress(b) => match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: &str, org: &str) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn rule(sans: &[&str], subjects: &[&str]) -> ClientCertRule {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ClientCertRule::new(&s(sans), &s(subjects)).unwrap()
    }

    #[test]
    fn a_san_of_the_list_passes_case_and_ip_form_aside() {
        let der = cert(&["Relay.Example.com", "10.0.0.1"], "relay", "Example");
        assert!(rule(&["relay.example.com"], &[]).allows(&der));
        assert!(rule(&["10.0.0.1"], &[]).allows(&der));
        assert!(!rule(&["other.example.com"], &[]).allows(&der));
    }

    #[test]
    fn a_subject_entry_needs_all_its_attributes() {
        let der = cert(&["relay.example.com"], "relay", "Example");
        assert!(rule(&[], &["CN=relay"]).allows(&der));
        assert!(rule(&[], &["CN=relay, O=Example"]).allows(&der));
        assert!(!rule(&[], &["CN=relay,O=Other"]).allows(&der));
        assert!(rule(&[], &["CN=nope", "O=Example"]).allows(&der));
    }

    #[test]
    fn bad_entries_are_refused_at_load() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(ClientCertRule::new(&[], &[]).is_err());
        assert!(ClientCertRule::new(&[], &s(&["CN"])).is_err());
        assert!(ClientCertRule::new(&[], &s(&["XX=1"])).is_err());
        assert!(ClientCertRule::new(&s(&[" "]), &[]).is_err());
        assert!(!rule(&["a"], &[]).allows(b"not a certificate"));
    }
}
