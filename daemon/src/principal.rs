//! Who is asking: a principal (name, role, organizations) as the API's bearer token names
//! it, and what that means inside an instance. Staff see and act within their
//! organizations; administrators anywhere; regulators read everything; schedulers start
//! instances.

use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{Actor, InstanceState};

pub use crate::store::records::Role;

#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub organizations: Vec<String>,
    /// The request it acts through (`x-request-id`), kept with what it does in a history.
    pub request: Option<String>,
    /// The hash of the bearer token it called with, when the API took it from the tokens it
    /// lately found standing instead of reading the token for this request
    /// (`api::known_tokens::KnownTokens`): the engine stores what it changes only if the token
    /// still stands, checked in the transaction that stores it. `None` when it was read
    /// for this request (or is a console session, or the system).
    pub unconfirmed_token: Option<String>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Administrator
    }

    pub fn is_staff(&self) -> bool {
        self.role == Role::Staff
    }

    /// Whether this principal may see an instance involving `organizations`.
    pub fn may_see(&self, organizations: &[String]) -> bool {
        match self.role {
            Role::Administrator | Role::Regulator | Role::Scheduler => true,
            Role::Staff => self.organizations.iter().any(|o| organizations.contains(o)),
        }
    }

    /// Regulators read and schedulers start; only staff and administrators act.
    pub fn acts_on_instances(&self) -> bool {
        matches!(self.role, Role::Staff | Role::Administrator)
    }

    /// The scope a list is narrowed to for this principal: staff see their organizations'
    /// work only; everyone else sees all of it.
    pub fn scope(&self) -> Option<Vec<String>> {
        self.is_staff().then(|| self.organizations.clone())
    }

    /// The actor this principal is in an instance: every role the instance gives to one of
    /// the principal's organizations.
    pub fn actor(&self, definition: &Definition, state: &InstanceState) -> Actor {
        let roles = definition
            .role_holders(|field| state.data.get(field))
            .into_iter()
            .filter(|(_, organization)| self.organizations.contains(organization))
            .map(|(role, _)| role)
            .collect();
        Actor {
            id: self.name.clone(),
            roles,
            organizations: self.organizations.clone(),
            administrator: self.is_admin(),
            request: self.request.clone(),
        }
    }
}
