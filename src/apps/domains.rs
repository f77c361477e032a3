//! Custom domains of an app. The rules live here, so every transport gets them: a domain is
//! syntactically valid, not under the platform domain (those names are the platform's), and
//! attached to at most one app. Checking and writing happen in one store transaction, so two
//! users claiming the same name at once cannot both win.

use super::Apps;
use crate::accounts::Principal;
use crate::domain::{AuditAction, DomainName, Error, Instance, Result};
use crate::store::Slice;

/// Most custom domains one app may have; bounds the record and the route table.
pub const MAX_DOMAINS_PER_APP: usize = 100;

impl Apps {
    /// The custom domains of an app the caller may see.
    pub fn domains(&self, who: &Principal, app: &str) -> Result<Vec<String>> {
        Ok(self.get(who, app)?.domains)
    }

    /// Attaches `domain` to the app. Returns the updated app, the domain as stored (lower case,
    /// no trailing dot) and whether it is new (adding a domain the app already has changes
    /// nothing).
    pub async fn add_domain(
        &self,
        who: &Principal,
        app: &str,
        domain: &str,
    ) -> Result<(Instance, String, bool)> {
        let inst = self.get(who, app)?;
        let domain = DomainName::parse(domain)?;
        if domain.is_under(&self.links.domain) {
            return Err(Error::invalid(
                "domain",
                format!(
                    "'{domain}' is under the platform domain '{}'; the app is already served at {}",
                    self.links.domain,
                    self.links.url(&inst.name)
                ),
            ));
        }
        let name = inst.name;
        let stored = domain.as_str().to_string();
        let audit = who.audit(AuditAction::AppDomainAdd, Some(&name), stored.clone());
        let (inst, added) = self
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                if inst.domains.iter().any(|d| d == domain.as_str()) {
                    return Ok((inst, false));
                }
                let taken = w
                    .instances_where(
                        Slice {
                            offset: 0,
                            limit: 1,
                        },
                        |other| {
                            other.name != name && other.domains.iter().any(|d| d == domain.as_str())
                        },
                    )?
                    .total
                    > 0;
                if taken {
                    // Which app holds it is not said: it may belong to another user.
                    return Err(Error::Conflict(format!(
                        "domain '{domain}' is already attached to another app"
                    )));
                }
                if inst.domains.len() >= MAX_DOMAINS_PER_APP {
                    return Err(Error::invalid(
                        "domain",
                        format!("an app can have at most {MAX_DOMAINS_PER_APP} custom domains"),
                    ));
                }
                inst.domains.push(domain.into_string());
                inst.domains.sort();
                w.put_instance(&inst)?;
                w.audit(audit)?;
                Ok((inst, true))
            })
            .await?;
        if added {
            self.changed(&inst);
        }
        Ok((inst, stored, added))
    }

    /// Detaches `domain` from the app; `NotFound` when the app does not have it.
    pub async fn remove_domain(
        &self,
        who: &Principal,
        app: &str,
        domain: &str,
    ) -> Result<Instance> {
        let inst = self.get(who, app)?;
        let wanted = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = inst.name;
        let audit = who.audit(AuditAction::AppDomainRemove, Some(&name), wanted.clone());
        let inst = self
            .store
            .write_async(move |w| {
                let mut inst = w
                    .instance(&name)?
                    .ok_or_else(|| Error::NotFound(format!("no app named '{name}'")))?;
                let before = inst.domains.len();
                inst.domains.retain(|d| *d != wanted);
                if inst.domains.len() == before {
                    return Err(Error::NotFound(format!(
                        "app '{name}' has no custom domain '{wanted}'"
                    )));
                }
                w.put_instance(&inst)?;
                w.audit(audit)?;
                Ok(inst)
            })
            .await?;
        self.changed(&inst);
        Ok(inst)
    }

    /// Every app with its state and custom domains, for loading the route table at start.
    /// Internal: no principal, as only start-up wiring calls it.
    pub fn routing_records(&self) -> Result<Vec<Instance>> {
        Ok(self
            .store
            .read(|r| r.instances_where(Slice::ALL, |_| true))?
            .items)
    }
}
