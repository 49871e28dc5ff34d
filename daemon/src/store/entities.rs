//! sea-orm entities of the tables created by `statflow-migrations`, one module per table.
//! Instants are UTC milliseconds; structured values are JSON text.

pub mod instances {
    //! A procedure instance: its state snapshot and the optimistic version that guards it.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "instances")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub procedure: String,
        pub jurisdiction: String,
        pub definition_version: String,
        pub status: String,
        pub outcome: Option<String>,
        pub step: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub state: String,
        pub version_no: i64,
        pub next_due_at: Option<i64>,
        pub overdue: bool,
        pub parent_instance_id: Option<i64>,
        pub parent_key: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
        /// The hash of the latest history row (the chain's head).
        pub head_hash: String,
        /// The key a schedule run started this instance under (unique), so a resumed run
        /// never starts it twice.
        pub start_key: Option<String>,
        /// The calendar generation its deadlines were last computed with.
        pub calendar_generation: i64,
        /// Why the instance failed verification; it then refuses further actions.
        #[sea_orm(column_type = "Text", nullable)]
        pub flagged: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod instance_organizations {
    //! An organization an instance involves (its scope), one row each.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "instance_organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub instance_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub organization: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod history {
    //! One applied event of an instance, hash-chained to the one before.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "history")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub instance_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub at: i64,
        pub actor: String,
        #[sea_orm(column_type = "Text")]
        pub event: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod timers {
    //! A scheduled timer of an instance, indexed by due time.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "timers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub instance_id: i64,
        pub timer_id: String,
        pub due_at: i64,
        #[sea_orm(column_type = "Text")]
        pub kind: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tasks {
    //! A task in someone's inbox, projected from the interpreter's open/close commands.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub instance_id: i64,
        pub task_id: String,
        pub step: String,
        pub title: String,
        pub role: String,
        pub organization: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub actions: String,
        pub due_at: Option<i64>,
        pub overdue: bool,
        pub status: String,
        pub assignee: Option<String>,
        pub created_at: i64,
        pub closed_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    //! An effect to carry out after commit, at least once, idempotent by key.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// None for an effect of no instance (a staff member's daily digest).
        pub instance_id: Option<i64>,
        pub key: String,
        #[sea_orm(column_type = "Text")]
        pub kind: String,
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: i64,
        pub last_error: Option<String>,
        pub created_at: i64,
        pub done_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod definitions {
    //! A stored definition version (its TOML source).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "definitions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: String,
        pub procedure: String,
        pub jurisdiction: String,
        pub file: String,
        #[sea_orm(column_type = "Text")]
        pub source: String,
        pub loaded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod calendars {
    //! An imported calendar year (its notice, as TSV).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calendars")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub year: i32,
        pub origin: String,
        #[sea_orm(column_type = "Text")]
        pub notice: String,
        pub imported_at: i64,
        /// Why an already loaded notice was replaced (a correction), if it was.
        #[sea_orm(column_type = "Text", nullable)]
        pub correction: Option<String>,
        /// The import this row came from; the calendar's generation is the largest.
        pub generation: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod principals {
    //! Someone who may call the API: role, organizations and the hash of their token.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "principals")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub role: String,
        #[sea_orm(column_type = "Text")]
        pub organizations: String,
        pub token_hash: String,
        pub created_at: i64,
        /// When the token stops working (UTC milliseconds); never when none.
        pub expires_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit {
    //! An administrative act: who did what to which target.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        pub principal: String,
        pub action: String,
        pub target: String,
        #[sea_orm(column_type = "Text")]
        pub detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod organizations {
    //! An organization notifications can reach: its duty address, the authority supervising
    //! it and the regulator its overdue work escalates to.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub email: Option<String>,
        pub supervisor: Option<String>,
        pub regulator: Option<String>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod contacts {
    //! A person of an organization who holds roles and has an email address.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub organization: String,
        pub name: String,
        pub email: String,
        /// `,role,role,`.
        #[sea_orm(column_type = "Text")]
        pub roles: String,
        pub principal: Option<String>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod schedules {
    //! A cron schedule: when it fires (Asia/Shanghai), what it starts, and what to do with
    //! fire times missed while the daemon was down.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub title: String,
        pub cron: String,
        /// The job as JSON (see `runtime::schedules::Job`).
        #[sea_orm(column_type = "Text")]
        pub job: String,
        /// `once`, `all` or `skip`.
        pub catch_up: String,
        pub enabled: bool,
        pub built_in: bool,
        /// The earliest fire time not yet handled.
        pub next_fire_at: Option<i64>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod schedule_runs {
    //! One fire time of a schedule: unique per (schedule, fire time), with what it started.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedule_runs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub schedule_id: String,
        pub fire_at: i64,
        /// `running`, `done`, `skipped` or `failed`.
        pub status: String,
        /// JSON: what the run started or did.
        #[sea_orm(column_type = "Text")]
        pub result: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub created_at: i64,
        pub finished_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ledger {
    //! The append-only ledger: one row per history row (or removed instance), chained across
    //! every instance in commit order.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub instance_id: i64,
        pub event_seq: i64,
        pub event_hash: String,
        /// `event`, or `removed` when the retention sweep removed the instance.
        pub kind: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ledger_head {
    //! The ledger's head, one row (id 1): every writer locks it on PostgreSQL.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod anchors {
    //! A ledger head exported at a day's end, signed when a key is configured.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "anchors")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        pub ledger_seq: i64,
        pub ledger_hash: String,
        pub key_id: Option<String>,
        pub signature: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod current_versions {
    //! The definition version an administrator made current for a procedure.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "current_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub procedure: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub jurisdiction: String,
        pub version: String,
        pub chosen_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod users {
    //! A person who signs in to the console: role, organizations and an argon2id hash.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub role: String,
        #[sea_orm(column_type = "Text")]
        pub organizations: String,
        pub password_hash: String,
        pub disabled: bool,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sessions {
    //! A signed-in session: the hash of its cookie, its person, its CSRF token and expiry.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub user_id: i64,
        pub csrf: String,
        pub created_at: i64,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
