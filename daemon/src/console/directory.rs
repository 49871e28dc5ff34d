//! 通讯录: the organizations notices go to (with their supervising authority and regulator)
//! and the contacts who hold each role: administrators see who is told what, and add or
//! change organizations and contacts and remove contacts, with the API's checks.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::{Deserialize, Serialize};

use super::session::CsrfForm;
use super::{ConsoleState, PageError, Viewer};
use crate::api::directory::{remove_contact, store_contact, store_organization};
use crate::store::directory::{ContactEntry, OrganizationEntry};
use crate::store::Slice;

#[derive(Serialize)]
struct OrganizationRow {
    id: String,
    name: String,
    email: Option<String>,
    supervisor: Option<String>,
    regulator: Option<String>,
    contacts: Vec<ContactRow>,
}

#[derive(Serialize)]
struct ContactRow {
    id: i64,
    name: String,
    email: String,
    roles: String,
    principal: Option<String>,
}

#[derive(Deserialize)]
pub struct DirectoryQuery {
    done: Option<String>,
}

pub async fn page(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<DirectoryQuery>,
) -> Response {
    directory_page(&console, &viewer, query.done, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

async fn directory_page(
    console: &ConsoleState,
    viewer: &Viewer,
    done: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    viewer.require_administrator()?;
    let store = &console.app.store;
    let (organizations, _) = store.organizations(Slice { offset: 0, limit: 1000 }).await?;
    let contacts = store.contacts().await?;
    let rows: Vec<OrganizationRow> = organizations
        .into_iter()
        .map(|o| OrganizationRow {
            contacts: contacts
                .iter()
                .filter(|c| c.organization == o.id)
                .map(|c| ContactRow {
                    id: c.id,
                    name: c.name.clone(),
                    email: c.email.clone(),
                    roles: c.roles.join("、"),
                    principal: c.principal.clone(),
                })
                .collect(),
            id: o.id,
            name: o.name,
            email: o.email,
            supervisor: o.supervisor,
            regulator: o.regulator,
        })
        .collect();
    Ok(console.render(
        status,
        "directory.html",
        minijinja::context! { viewer => viewer.header(), active => "directory", rows, done, error },
    ))
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Says what went wrong with a form, on the page, in the API's words with its field.
async fn refused(
    console: &ConsoleState,
    viewer: &Viewer,
    problem: crate::api::problem::Problem,
) -> Result<Response, PageError> {
    if problem.status.is_server_error() {
        return Err(problem.into());
    }
    let said = match &problem.field {
        Some(field) => format!("{field}：{}", problem.detail),
        None => problem.detail.clone(),
    };
    directory_page(console, viewer, None, Some(said), problem.status).await
}

#[derive(Deserialize)]
pub struct OrganizationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    supervisor: String,
    #[serde(default)]
    regulator: String,
}

pub async fn put_organization(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Form(form): Form<OrganizationForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let entry = OrganizationEntry {
            name: form.name.trim().to_owned(),
            email: optional(&form.email),
            supervisor: optional(&form.supervisor),
            regulator: optional(&form.regulator),
        };
        let id = form.id.trim();
        match store_organization(&console.app, &viewer.principal.name, id, &entry).await {
            Ok(()) => Ok(super::redirect_saying("/admin/directory", "done", &format!("已保存单位 {id}。"))),
            Err(problem) => refused(&console, &viewer, problem).await,
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    /// Roles separated by commas or spaces.
    #[serde(default)]
    roles: String,
    #[serde(default)]
    principal: String,
}

pub async fn put_contact(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Form(form): Form<ContactForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let entry = ContactEntry {
            organization: form.organization.trim().to_owned(),
            name: form.name.trim().to_owned(),
            email: form.email.trim().to_owned(),
            roles: form
                .roles
                .split([',', '，', ' ', '、'])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            principal: optional(&form.principal),
        };
        match store_contact(&console.app, &viewer.principal.name, &entry).await {
            Ok(()) => Ok(super::redirect_saying("/admin/directory", "done", &format!("已保存联系人 {}。", entry.name))),
            Err(problem) => refused(&console, &viewer, problem).await,
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

pub async fn delete_contact(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let id: i64 = id.parse().map_err(|_| crate::api::problem::Problem::not_found("没有这个联系人。"))?;
        remove_contact(&console.app, &viewer.principal.name, id).await?;
        Ok::<_, PageError>(super::redirect_saying("/admin/directory", "done", "已删除联系人。"))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
