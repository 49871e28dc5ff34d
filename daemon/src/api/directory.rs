//! /v1/directory: the organizations and contacts notifications are addressed to
//! (administrators). A whole bootstrap file can be loaded at once (`statflow directory load`),
//! or one organization or contact changed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::AppState;
use crate::principal::Principal;
use crate::store::directory::{ContactEntry, DirectoryFile, OrganizationEntry};
use crate::store::{from_millis, to_millis};

fn admin_only(principal: &Principal) -> Result<(), Problem> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden("only administrators manage the directory"))
    }
}

fn check_email(field: &str, email: &str) -> Result<(), Problem> {
    crate::store::directory::check_email(email).map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, e))
}

/// An organization of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    /// The duty address reached when no person holds the role.
    pub email: Option<String>,
    pub supervisor: Option<String>,
    pub regulator: Option<String>,
    pub updated_at: DateTime<FixedOffset>,
}

/// A person notifications go to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub id: i64,
    pub organization: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub principal: Option<String>,
}

/// One page of organizations and the same page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryView {
    pub organizations: Vec<OrganizationView>,
    pub contacts: Vec<ContactView>,
    pub page: u64,
    pub per_page: u64,
    pub total_organizations: u64,
    pub total_contacts: u64,
}

/// How many entries a bootstrap file added or replaced.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadSummary {
    pub organizations: usize,
    pub contacts: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationPut {
    pub id: String,
    pub organization: OrganizationEntry,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPut {
    pub contact: ContactEntry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// One page of organizations and the same page of contacts (a client reads on until both
/// are exhausted).
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<DirectoryQuery>,
) -> Result<Json<DirectoryView>, Problem> {
    admin_only(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let (organizations, total_organizations) = state.store.organizations(page.slice()).await?;
    let (contacts, total_contacts) = state.store.contacts_page(page.slice()).await?;
    let contacts = contacts
        .into_iter()
        .map(|c| ContactView {
            id: c.id,
            roles: c.roles,
            organization: c.organization,
            name: c.name,
            email: c.email,
            principal: c.principal,
        })
        .collect();
    let organizations = organizations
        .into_iter()
        .map(|o| OrganizationView {
            id: o.id,
            name: o.name,
            email: o.email,
            supervisor: o.supervisor,
            regulator: o.regulator,
            updated_at: from_millis(o.updated_at),
        })
        .collect();
    Ok(Json(DirectoryView {
        organizations,
        contacts,
        page: page.number,
        per_page: page.size,
        // The directory is configuration, far below the counting bound: exact.
        total_organizations: total_organizations.count,
        total_contacts: total_contacts.count,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// The bootstrap file's TOML text.
    source: String,
    /// Its name, for error messages.
    #[serde(default = "default_origin")]
    origin: String,
}

fn default_origin() -> String {
    "directory.toml".into()
}

pub async fn load(
    State(state): State<AppState>,
    principal: Principal,
    Body(request): Body<LoadRequest>,
) -> Result<Json<LoadSummary>, Problem> {
    admin_only(&principal)?;
    let file = DirectoryFile::parse(&request.source, &request.origin)
        .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "source", e))?;
    state.store.load_directory(&file, to_millis(state.engine.now())).await?;
    let summary = LoadSummary { organizations: file.organizations.len(), contacts: file.contacts.len() };
    state.store.audit(&principal.name, "directory.load", &request.origin, json!(summary)).await?;
    Ok(Json(summary))
}

pub async fn put_organization(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(entry): Body<OrganizationEntry>,
) -> Result<Json<OrganizationPut>, Problem> {
    admin_only(&principal)?;
    store_organization(&state, &principal.name, &id, &entry).await?;
    Ok(Json(OrganizationPut { id, organization: entry }))
}

/// Checks and stores an organization for `by` (an administrator), audited; errors name the
/// field. The API and the console both come through here.
pub async fn store_organization(
    state: &AppState,
    by: &str,
    id: &str,
    entry: &OrganizationEntry,
) -> Result<(), Problem> {
    crate::organization::check(id).map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "id", e))?;
    for (field, reference) in [("supervisor", &entry.supervisor), ("regulator", &entry.regulator)] {
        if let Some(reference) = reference {
            crate::organization::check(reference)
                .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, e))?;
        }
    }
    if let Some(email) = &entry.email {
        check_email("email", email)?;
    }
    state.store.put_organization(id, entry, to_millis(state.engine.now())).await?;
    state.store.audit(by, "directory.organization", id, json!(entry)).await?;
    Ok(())
}

pub async fn put_contact(
    State(state): State<AppState>,
    principal: Principal,
    Body(entry): Body<ContactEntry>,
) -> Result<Json<ContactPut>, Problem> {
    admin_only(&principal)?;
    store_contact(&state, &principal.name, &entry).await?;
    Ok(Json(ContactPut { contact: entry }))
}

/// Checks and stores a contact for `by` (an administrator), audited; errors name the field.
pub async fn store_contact(state: &AppState, by: &str, entry: &ContactEntry) -> Result<(), Problem> {
    check_email("email", &entry.email)?;
    if state.store.organization(&entry.organization).await?.is_none() {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "organization",
            format!("organization `{}` is not in the directory; add it first", entry.organization),
        ));
    }
    state.store.put_contact(entry, to_millis(state.engine.now())).await?;
    state.store.audit(by, "directory.contact", &entry.email, json!(entry)).await?;
    Ok(())
}

pub async fn delete_contact(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<i64>,
) -> Result<StatusCode, Problem> {
    admin_only(&principal)?;
    remove_contact(&state, &principal.name, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a contact for `by` (an administrator), audited.
pub async fn remove_contact(state: &AppState, by: &str, id: i64) -> Result<(), Problem> {
    if !state.store.delete_contact(id).await? {
        return Err(Problem::not_found(format!("no contact {id}")));
    }
    state.store.audit(by, "directory.contact.delete", &id.to_string(), json!({})).await?;
    Ok(())
}
