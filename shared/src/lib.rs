//! The domain crate every function uses: models, authorization, the single-table store, and
//! the HTTP glue that maps domain results to API Gateway responses.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod brake;
pub mod email_change;
pub mod error;
pub mod grants;
pub mod http;
pub mod ids;
#[cfg(feature = "waldur-import")]
pub mod import;
pub mod invitations;
pub mod notify;
pub mod outbox;
pub mod page;
pub mod project_move;
pub mod reviews;
pub mod roles;
pub mod scheduler;
pub mod scopes;
pub mod secrets;
pub mod sessions;
pub mod store;
pub mod time;
pub mod users;
pub mod validate;
pub mod workspaces;

pub use error::{Error, Result};

/// What a function builds once per cold start and shares across invocations.
#[derive(Clone)]
pub struct Context {
    pub store: store::Store,
    pub roles: std::sync::Arc<authz::RoleCache>,
}

impl Context {
    pub fn new(store: store::Store) -> Self {
        Context {
            store,
            roles: Default::default(),
        }
    }

    /// The context of a Lambda container: built once at init, with the connection to
    /// DynamoDB already open.
    pub async fn from_env() -> Result<Self> {
        let store = store::Store::from_env().await?;
        store.warm().await;
        Ok(Context::new(store))
    }
}
