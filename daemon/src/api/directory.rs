//! /v1/directory: the organizations and contacts notifications are addressed to
//! (administrators). A whole bootstrap file can be loaded at once (`statflow directory load`),
//! or one organization or contact changed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sea_orm::{EntityTrait, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Principal;
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use crate::runtime::Runtime;
use crate::store::directory::{ContactEntry, DirectoryFile, OrganizationEntry};
use crate::store::entities::{contacts, organizations};
use crate::store::{to_millis, StoreError};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// One page of organizations and the same page of contacts (a client reads on until both
/// are exhausted).
pub async fn show(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Params(query): Params<DirectoryQuery>,
) -> Result<Json<Value>, Problem> {
    admin_only(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let db = &runtime.store.db;
    let (organizations, total_organizations) =
        page.read(organizations::Entity::find().order_by_asc(organizations::Column::Id), db).await?;
    let contacts =
        contacts::Entity::find().order_by_asc(contacts::Column::Organization).order_by_asc(contacts::Column::Id);
    let (contacts, total_contacts) = page.read(contacts, db).await?;
    let contacts: Vec<Value> = contacts
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "organization": c.organization, "name": c.name, "email": c.email,
                "roles": c.roles.split(',').filter(|r| !r.is_empty()).collect::<Vec<_>>(), "principal": c.principal,
            })
        })
        .collect();
    Ok(Json(json!({
        "organizations": organizations, "contacts": contacts, "page": page.number, "per_page": page.size,
        "total_organizations": total_organizations, "total_contacts": total_contacts,
    })))
}

#[derive(Deserialize)]
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
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(request): Body<LoadRequest>,
) -> Result<Json<Value>, Problem> {
    admin_only(&principal)?;
    let file = DirectoryFile::parse(&request.source, &request.origin)
        .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "source", e))?;
    runtime.store.load_directory(&file, to_millis(runtime.clock.now())).await?;
    let summary = json!({"organizations": file.organizations.len(), "contacts": file.contacts.len()});
    runtime.store.audit(&principal.name, "directory.load", &request.origin, summary.clone()).await?;
    Ok(Json(summary))
}

pub async fn put_organization(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(entry): Body<OrganizationEntry>,
) -> Result<Json<Value>, Problem> {
    admin_only(&principal)?;
    crate::organization::check(&id).map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "id", e))?;
    for (field, reference) in [("supervisor", &entry.supervisor), ("regulator", &entry.regulator)] {
        if let Some(reference) = reference {
            crate::organization::check(reference)
                .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, e))?;
        }
    }
    if let Some(email) = &entry.email {
        check_email("email", email)?;
    }
    runtime.store.put_organization(&id, &entry, to_millis(runtime.clock.now())).await?;
    runtime.store.audit(&principal.name, "directory.organization", &id, json!(entry)).await?;
    Ok(Json(json!({"id": id, "organization": entry})))
}

pub async fn put_contact(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(entry): Body<ContactEntry>,
) -> Result<Json<Value>, Problem> {
    admin_only(&principal)?;
    check_email("email", &entry.email)?;
    if runtime.store.organization(&entry.organization).await?.is_none() {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "organization",
            format!("organization `{}` is not in the directory; add it first", entry.organization),
        ));
    }
    runtime.store.put_contact(&entry, to_millis(runtime.clock.now())).await?;
    runtime.store.audit(&principal.name, "directory.contact", &entry.email, json!(entry)).await?;
    Ok(Json(json!({"contact": entry})))
}

pub async fn delete_contact(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<i64>,
) -> Result<StatusCode, Problem> {
    admin_only(&principal)?;
    let deleted = contacts::Entity::delete_by_id(id).exec(&runtime.store.db).await.map_err(StoreError::from)?;
    if deleted.rows_affected == 0 {
        return Err(Problem::not_found(format!("no contact {id}")));
    }
    runtime.store.audit(&principal.name, "directory.contact.delete", &id.to_string(), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
