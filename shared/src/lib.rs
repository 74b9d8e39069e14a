//! The domain crate every function uses: models, authorization, the single-table store, and
//! the HTTP glue that maps domain results to API Gateway responses.

pub mod audit;
pub mod auth;
pub mod error;
pub mod http;
pub mod ids;
pub mod page;
pub mod roles;
pub mod store;
pub mod time;
pub mod users;

pub use error::{Error, Result};

/// What a function builds once per cold start and shares across invocations.
#[derive(Clone)]
pub struct Context {
    pub store: store::Store,
}

impl Context {
    pub async fn from_env() -> Result<Self> {
        Ok(Context {
            store: store::Store::from_env().await?,
        })
    }
}
