//! 通讯录: the organizations notices go to (with their supervising authority and regulator)
//! and the contacts who hold each role, for administrators to check who is told what.
//! Changes go through `statflow directory load` or the API (`/v1/directory`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{ConsoleState, PageError, Viewer};
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
    name: String,
    email: String,
    roles: String,
    principal: Option<String>,
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer) -> Response {
    let shown = async {
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
        Ok::<_, PageError>(console.render(
            StatusCode::OK,
            "directory.html",
            minijinja::context! { viewer => viewer.header(), active => "directory", rows },
        ))
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
