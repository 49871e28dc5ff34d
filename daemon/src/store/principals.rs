//! Principals: who may call the API, found by the hash of their token.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr};

use super::entities::{principals, users};
use super::records::{PrincipalRecord, Role};
use super::{read_page, Slice, Store, StoreError, Total};

impl Store {
    /// Every token's holder by name, or the `first` so many (the tokens themselves are never
    /// stored).
    pub async fn token_holders(&self, first: Option<u64>) -> Result<Vec<PrincipalRecord>, StoreError> {
        let rows = principals::Entity::find().order_by_asc(principals::Column::Name).limit(first).all(&self.db).await?;
        rows.into_iter().map(PrincipalRecord::decode).collect()
    }

    /// One slice of the tokens' holders by name, and how many there are.
    pub async fn token_holders_page(&self, slice: Slice) -> Result<(Vec<PrincipalRecord>, Total), StoreError> {
        let select = principals::Entity::find().order_by_asc(principals::Column::Name);
        let (rows, total) = read_page(select, slice, &self.db).await?;
        Ok((rows.into_iter().map(PrincipalRecord::decode).collect::<Result<_, _>>()?, total))
    }

    /// Revokes the token of `name` on the word of `by`, recorded in the audit log; false if
    /// there is none. Its history entries keep the name.
    pub async fn revoke_token(&self, name: &str, by: &str) -> Result<bool, StoreError> {
        let deleted =
            principals::Entity::delete_many().filter(principals::Column::Name.eq(name)).exec(&self.db).await?;
        if deleted.rows_affected == 0 {
            return Ok(false);
        }
        self.audit(by, "token.revoke", name, serde_json::json!({})).await?;
        Ok(true)
    }

    pub async fn principal_by_token(&self, token_hash: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        principals::Entity::find()
            .filter(principals::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
            .map(PrincipalRecord::decode)
            .transpose()
    }

    /// Stores a new principal; a name already taken is [`StoreError::Exists`].
    pub async fn create_principal(
        &self,
        name: &str,
        role: Role,
        organizations: &[String],
        token_hash: &str,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        // One name, one actor: a token may not take a person's name.
        if users::Entity::find().filter(users::Column::Name.eq(name)).one(&self.db).await?.is_some() {
            return Err(StoreError::Exists(format!("a user named `{name}`")));
        }
        let inserted = principals::ActiveModel {
            name: Set(name.to_owned()),
            role: Set(role.as_str().to_owned()),
            organizations: Set(serde_json::to_string(organizations).expect("serializes")),
            token_hash: Set(token_hash.to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            ..Default::default()
        }
        .insert(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(StoreError::Exists(format!("a principal named `{name}`")))
            }
            Err(error) => Err(error.into()),
        }
    }
}
