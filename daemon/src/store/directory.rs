//! The directory: who a notification reaches. A recipient named by a definition is a role in
//! an organization; it resolves to
//! - `supervisor`: the contacts holding `supervisor` in the organization's supervising
//!   authority, else that authority's duty address;
//! - `regulator`: the duty address of the organization's regulator (the nearest one up the
//!   chain of supervising authorities);
//! - any other role: the organization's contacts holding the role, else its duty address.
//!
//! It is kept in the database and seeded from a bootstrap file (docs/notifications.md).

use std::collections::BTreeMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use statflow_workflows::engine::Recipient;

use super::entities::{contacts, organizations};
use super::records::{ContactRecord, OrganizationRecord};
use super::{read_page, Slice, Store, StoreError, Total};

/// The bootstrap file's layout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFile {
    #[serde(default)]
    pub organizations: BTreeMap<String, OrganizationEntry>,
    #[serde(default)]
    pub contacts: Vec<ContactEntry>,
}

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationEntry {
    pub name: String,
    /// The duty address (值班邮箱) reached when no person holds the role.
    pub email: Option<String>,
    pub supervisor: Option<String>,
    pub regulator: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactEntry {
    pub organization: String,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The principal (token name) this person signs in as, if any.
    pub principal: Option<String>,
}

/// One address a message goes to, with whom it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Address {
    pub email: String,
    pub label: String,
}

/// Why `email` cannot be an address mail is sent to, if it cannot.
pub fn check_email(email: &str) -> Result<(), String> {
    let valid = email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(())
    } else {
        Err(format!("`{email}` is not an email address"))
    }
}

impl DirectoryFile {
    /// Parses a bootstrap file; errors name the file and line.
    pub fn parse(text: &str, origin: &str) -> Result<DirectoryFile, String> {
        let file: DirectoryFile = toml::from_str(text).map_err(|e| crate::config::toml_error(text, origin, &e))?;
        let emails = file.organizations.values().filter_map(|o| o.email.as_ref().map(|e| (&o.name, e)));
        for (whose, email) in emails.chain(file.contacts.iter().map(|c| (&c.name, &c.email))) {
            check_email(email).map_err(|e| format!("{origin}: {whose:?}: {e}"))?;
        }
        let referenced = file.organizations.values().flat_map(|o| o.supervisor.iter().chain(&o.regulator));
        let ids = file.organizations.keys().chain(referenced).chain(file.contacts.iter().map(|c| &c.organization));
        for id in ids {
            crate::organization::check(id).map_err(|e| format!("{origin}: {e}"))?;
        }
        Ok(file)
    }
}

impl Store {
    /// Adds or replaces the organizations and contacts of `file`; others are left alone.
    pub async fn load_directory(&self, file: &DirectoryFile, now: i64) -> Result<(), StoreError> {
        for (id, entry) in &file.organizations {
            self.put_organization(id, entry, now).await?;
        }
        for entry in &file.contacts {
            self.put_contact(entry, now).await?;
        }
        Ok(())
    }

    pub async fn put_organization(&self, id: &str, entry: &OrganizationEntry, now: i64) -> Result<(), StoreError> {
        let row = organizations::ActiveModel {
            id: Set(id.to_owned()),
            name: Set(entry.name.clone()),
            email: Set(entry.email.clone()),
            supervisor: Set(entry.supervisor.clone()),
            regulator: Set(entry.regulator.clone()),
            updated_at: Set(now),
        };
        organizations::Entity::insert(row)
            .on_conflict(
                OnConflict::column(organizations::Column::Id)
                    .update_columns([
                        organizations::Column::Name,
                        organizations::Column::Email,
                        organizations::Column::Supervisor,
                        organizations::Column::Regulator,
                        organizations::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    pub async fn put_contact(&self, entry: &ContactEntry, now: i64) -> Result<(), StoreError> {
        let row = contacts::ActiveModel {
            organization: Set(entry.organization.clone()),
            name: Set(entry.name.clone()),
            email: Set(entry.email.clone()),
            roles: Set(format!(",{},", entry.roles.join(","))),
            principal: Set(entry.principal.clone()),
            updated_at: Set(now),
            ..Default::default()
        };
        contacts::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([contacts::Column::Organization, contacts::Column::Email])
                    .update_columns([
                        contacts::Column::Name,
                        contacts::Column::Roles,
                        contacts::Column::Principal,
                        contacts::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    pub async fn organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError> {
        Ok(organizations::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(OrganizationRecord::from))
    }

    /// One slice of the organizations, by id.
    pub async fn organizations(&self, slice: Slice) -> Result<(Vec<OrganizationRecord>, Total), StoreError> {
        let select = organizations::Entity::find().order_by_asc(organizations::Column::Id);
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((rows.into_iter().map(OrganizationRecord::from).collect(), total))
    }

    /// One slice of the contacts, by organization.
    pub async fn contacts_page(&self, slice: Slice) -> Result<(Vec<ContactRecord>, Total), StoreError> {
        let select =
            contacts::Entity::find().order_by_asc(contacts::Column::Organization).order_by_asc(contacts::Column::Id);
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((rows.into_iter().map(ContactRecord::from).collect(), total))
    }

    /// Every contact, by id (the daily digest).
    pub async fn contacts(&self) -> Result<Vec<ContactRecord>, StoreError> {
        Ok(contacts::Entity::find()
            .order_by_asc(contacts::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(ContactRecord::from)
            .collect())
    }

    /// Removes a contact; false when there was none of that id.
    pub async fn delete_contact(&self, id: i64) -> Result<bool, StoreError> {
        Ok(contacts::Entity::delete_by_id(id).exec(&self.db).await?.rows_affected == 1)
    }

    /// The addresses `recipient` stands for; an error says why there are none.
    pub async fn resolve(&self, recipient: &Recipient) -> Result<Vec<Address>, String> {
        let Some(org_id) = &recipient.organization else {
            return Err(format!("the recipient `{}` names no organization", recipient.role));
        };
        let lookup = |id: String| async move { self.organization(&id).await.map_err(|e| e.to_string()) };
        let Some(organization) = lookup(org_id.clone()).await? else {
            return Err(format!("organization `{org_id}` is not in the directory"));
        };
        match recipient.role.as_str() {
            "supervisor" => {
                let id = organization
                    .supervisor
                    .clone()
                    .ok_or_else(|| format!("`{org_id}` has no supervising authority"))?;
                let supervisor =
                    lookup(id.clone()).await?.ok_or_else(|| format!("organization `{id}` is not in the directory"))?;
                self.holders_or_duty(&supervisor, "supervisor").await
            }
            "regulator" => {
                // The nearest regulator up the chain of supervising authorities.
                let mut current = organization;
                for _ in 0..16 {
                    if let Some(id) = &current.regulator {
                        let regulator = lookup(id.clone())
                            .await?
                            .ok_or_else(|| format!("organization `{id}` is not in the directory"))?;
                        return self.holders_or_duty(&regulator, "regulator").await;
                    }
                    let Some(next) = current.supervisor.clone() else { break };
                    current = lookup(next.clone())
                        .await?
                        .ok_or_else(|| format!("organization `{next}` is not in the directory"))?;
                }
                Err(format!("no regulator is set for `{org_id}` or the authorities above it"))
            }
            role => self.holders_or_duty(&organization, role).await,
        }
    }

    async fn holders_or_duty(&self, organization: &OrganizationRecord, role: &str) -> Result<Vec<Address>, String> {
        let holders = contacts::Entity::find()
            .filter(contacts::Column::Organization.eq(&organization.id))
            .filter(contacts::Column::Roles.contains(format!(",{role},")))
            .all(&self.db)
            .await
            .map_err(|e| e.to_string())?;
        if !holders.is_empty() {
            return Ok(holders
                .into_iter()
                .map(|c| Address { email: c.email, label: format!("{}({})", c.name, organization.name) })
                .collect());
        }
        match &organization.email {
            Some(email) => Ok(vec![Address { email: email.clone(), label: organization.name.clone() }]),
            None => Err(format!("nobody in `{}` holds `{role}` and it has no duty address", organization.id)),
        }
    }
}
