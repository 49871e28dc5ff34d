//! People who sign in to the console and their sessions. Passwords arrive here already
//! hashed (argon2id, in `console::password`), session cookies as the SHA-256 of their value:
//! neither secret is ever stored.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr};

use super::entities::{principals, sessions, users};
use super::records::{Role, RowName};
use super::{Store, StoreError};

/// A person who may sign in (or could, until disabled).
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub organizations: Vec<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl UserRecord {
    fn decode(row: users::Model) -> Result<UserRecord, StoreError> {
        let id = row.id;
        let name = RowName("user", &id);
        let organizations = serde_json::from_str(&row.organizations)
            .map_err(|e| StoreError::Corrupt(format!("{name}: its organizations do not decode: {e}")))?;
        Ok(UserRecord {
            role: Role::decode(&row.role, name)?,
            id: row.id,
            name: row.name,
            organizations,
            password_hash: row.password_hash,
            disabled: row.disabled,
            created_at: row.created_at,
        })
    }
}

/// A live session and the person it belongs to.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub user: UserRecord,
    pub csrf: String,
}

/// A new person to store.
pub struct NewUser<'a> {
    pub name: &'a str,
    pub role: Role,
    pub organizations: &'a [String],
    pub password_hash: &'a str,
}

impl Store {
    /// Stores a new person; a name a person or a token already holds is [`StoreError::Exists`]
    /// (history entries name the actor, so one name means one actor).
    pub async fn create_user(&self, user: NewUser<'_>, now: i64) -> Result<UserRecord, StoreError> {
        let taken = || StoreError::Exists(format!("a user or token named `{}`", user.name));
        if principals::Entity::find().filter(principals::Column::Name.eq(user.name)).one(&self.db).await?.is_some() {
            return Err(taken());
        }
        let inserted = users::ActiveModel {
            name: Set(user.name.to_owned()),
            role: Set(user.role.as_str().to_owned()),
            organizations: Set(serde_json::to_string(user.organizations).expect("serializes")),
            password_hash: Set(user.password_hash.to_owned()),
            disabled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await;
        match inserted {
            Ok(row) => UserRecord::decode(row),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(taken()),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        users::Entity::find()
            .filter(users::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(UserRecord::decode)
            .transpose()
    }

    /// Everyone by name, or the `first` so many.
    pub async fn users(&self, first: Option<u64>) -> Result<Vec<UserRecord>, StoreError> {
        let rows = users::Entity::find().order_by_asc(users::Column::Name).limit(first).all(&self.db).await?;
        rows.into_iter().map(UserRecord::decode).collect()
    }

    /// Sets a person's password hash and ends their sessions; false if no such person.
    pub async fn set_password(&self, name: &str, password_hash: &str, now: i64) -> Result<bool, StoreError> {
        self.update_user(name, now, |update| update.col_expr(users::Column::PasswordHash, Expr::value(password_hash)))
            .await
    }

    /// Disables (or enables again) a person; disabling ends their sessions.
    pub async fn set_disabled(&self, name: &str, disabled: bool, now: i64) -> Result<bool, StoreError> {
        self.update_user(name, now, |update| update.col_expr(users::Column::Disabled, Expr::value(disabled))).await
    }

    async fn update_user(
        &self,
        name: &str,
        now: i64,
        change: impl FnOnce(sea_orm::UpdateMany<users::Entity>) -> sea_orm::UpdateMany<users::Entity>,
    ) -> Result<bool, StoreError> {
        let Some(user) = self.user(name).await? else { return Ok(false) };
        let update = users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.id));
        change(update).exec(&self.db).await?;
        sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user.id)).exec(&self.db).await?;
        Ok(true)
    }

    pub async fn create_session(
        &self,
        user: i64,
        token_hash: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Sessions that ran out are removed as new ones begin, so the table stays small.
        sessions::Entity::delete_many().filter(sessions::Column::ExpiresAt.lte(now)).exec(&self.db).await?;
        sessions::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(user),
            csrf: Set(csrf.to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// The live session whose cookie hashes to `token_hash`, with its person; none if it ran
    /// out or its person is disabled.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRecord>, StoreError> {
        let Some(session) = sessions::Entity::find_by_id(token_hash.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        if session.expires_at <= now {
            return Ok(None);
        }
        let Some(user) = users::Entity::find_by_id(session.user_id).one(&self.db).await? else { return Ok(None) };
        let user = UserRecord::decode(user)?;
        if user.disabled {
            return Ok(None);
        }
        Ok(Some(SessionRecord { user, csrf: session.csrf }))
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sessions::Entity::delete_by_id(token_hash.to_owned()).exec(&self.db).await?;
        Ok(())
    }
}
