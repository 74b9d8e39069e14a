//! The one error type of the product. Domain code returns it; `http::error_response` is the only
//! place that turns it into a status code and a body.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
pub const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
pub const FIELD_REQUIRED: &str = "This field is required.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 401: missing or unusable credentials; the text says which.
    NotAuthenticated(String),
    /// 403: the caller sees the object but may not act on it.
    PermissionDenied,
    /// 403 with a text of its own (Waldur's hand-written refusals).
    Forbidden(String),
    /// 404: missing or invisible; the text is Waldur's `No <Model> matches the given query.`
    NotFound(String),
    /// 400 with per-field messages (`{"field": ["msg"]}`).
    Invalid(FieldErrors),
    /// 400 with a bare list (`["msg"]`), as Waldur answers for checks made in a view.
    Rejected(Vec<String>),
    /// 400 `{"detail": "msg"}`: a body that is not JSON at all.
    Malformed(String),
    /// 409: a state conflict.
    Conflict(String),
    /// 405.
    MethodNotAllowed {
        method: String,
        allowed: Vec<&'static str>,
    },
    /// 413.
    PayloadTooLarge,
    /// 415.
    UnsupportedMediaType(String),
    /// 429.
    Throttled(String),
    /// 503: the store could not be reached or kept refusing; nothing was written.
    Unavailable(String),
    /// 502: the mail server refused or could not be reached (the notifier retries).
    Mail(String),
    /// 500: a bug or an unexpected store answer. The text is logged, never sent.
    Internal(String),
}

impl Error {
    pub fn not_found(model: &str) -> Self {
        Error::NotFound(format!("No {model} matches the given query."))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        Error::Invalid(errors)
    }

    pub fn non_field(message: impl Into<String>) -> Self {
        Error::field("non_field_errors", message)
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Error::Rejected(vec![message.into()])
    }

    pub fn internal(context: impl fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAuthenticated(m)
            | Error::NotFound(m)
            | Error::Malformed(m)
            | Error::Conflict(m)
            | Error::Forbidden(m)
            | Error::Throttled(m)
            | Error::Unavailable(m)
            | Error::Mail(m)
            | Error::Internal(m)
            | Error::UnsupportedMediaType(m) => f.write_str(m),
            Error::PermissionDenied => f.write_str(PERMISSION_DENIED),
            Error::Invalid(errors) => write!(f, "invalid input: {errors:?}"),
            Error::Rejected(messages) => f.write_str(&messages.join("; ")),
            Error::MethodNotAllowed { method, .. } => write!(f, "method {method} not allowed"),
            Error::PayloadTooLarge => f.write_str("request body too large"),
        }
    }
}

impl std::error::Error for Error {}

/// Field errors in the order they were found, DRF style.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, messages)) => messages.push(message),
            None => self.0.push((field.to_owned(), vec![message])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_slice()))
    }

    pub fn messages(&self, field: &str) -> &[String] {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, m)| m.as_slice())
            .unwrap_or_default()
    }

    /// `Ok(value)` when nothing was recorded, else the errors.
    pub fn into_result<T>(self, value: T) -> Result<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::Invalid(self))
        }
    }
}
