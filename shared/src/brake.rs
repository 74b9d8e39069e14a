//! Brakes on password guessing: a window of attempts per subject (an e-mail address, or a
//! username and source address), counted atomically *before* the password is checked, so that
//! however many guesses arrive at once, at most `max` of them per window are checked.

use chrono::Duration;

use crate::error::{Error, Result};
use crate::store::{Expr, Store, Transaction, TxError, n, s};
use crate::time::{self, Timestamp};

pub struct Brake {
    /// The partition prefix of the brake's items, e.g. `LOGINFAIL`.
    pub prefix: &'static str,
    /// Attempts checked per window.
    pub max: i64,
    pub window: Duration,
    /// The answer once the window is full.
    pub refusal: fn() -> Error,
}

impl Brake {
    fn key(&self, subject: &str) -> String {
        format!("{}#{}", self.prefix, subject.to_lowercase())
    }

    /// Counts an attempt, or refuses it when the window is full: one conditional update adds to
    /// a window still open and not full, or another starts a new window (a second try covers a
    /// window that another attempt opened between the two). The item expires by TTL.
    pub async fn charge(&self, store: &Store, subject: &str, now: &Timestamp) -> Result<()> {
        let key = self.key(subject);
        let cutoff = s(time::storage(&(*now - self.window)));
        let ttl = n((*now + self.window).timestamp());
        for _ in 0..2 {
            let mut tx = store.transaction();
            tx.update(
                &key,
                "#META",
                Expr::new("ADD failures :one SET expires_at = :ttl")
                    .value(":one", n(1))
                    .value(":ttl", ttl.clone()),
                Some(
                    Expr::new("window_start > :cutoff AND failures < :max")
                        .value(":cutoff", cutoff.clone())
                        .value(":max", n(self.max)),
                ),
            )?;
            match tx.commit().await {
                Ok(()) => return Ok(()),
                Err(TxError::ConditionFailed(_)) => {}
                Err(err) => return Err(err.into()),
            }
            let mut tx = store.transaction();
            tx.update(
                &key,
                "#META",
                Expr::new("SET failures = :one, window_start = :now, expires_at = :ttl")
                    .value(":one", n(1))
                    .value(":now", s(time::storage(now)))
                    .value(":ttl", ttl.clone()),
                Some(
                    Expr::new("attribute_not_exists(window_start) OR window_start <= :cutoff")
                        .value(":cutoff", cutoff.clone()),
                ),
            )?;
            match tx.commit().await {
                Ok(()) => return Ok(()),
                Err(TxError::ConditionFailed(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Err((self.refusal)())
    }

    /// Gives a successful attempt back, in the transaction that the success writes anyway.
    /// Unconditional: should the window have ended and another begun meanwhile, it only counts
    /// one guess fewer.
    pub fn refund(&self, tx: &mut Transaction<'_>, subject: &str) -> Result<usize> {
        tx.update(
            &self.key(subject),
            "#META",
            Expr::new("ADD failures :minus").value(":minus", n(-1)),
            None,
        )
    }
}
