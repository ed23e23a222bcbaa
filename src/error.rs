//! The error policy. Service functions return `ApiError`; GraphQL resolvers turn it into an
//! `async_graphql::Error` carrying `extensions.code` (API.md's list) through `From` below,
//! which is the one place an internal cause is logged. Clients see what they did wrong, never
//! how the service is built: internal errors say only "internal error" and a log reference.

use async_graphql::ErrorExtensions;

///
/// `ApiError` deliberately has no `Display`: async-graphql converts anything displayable into
/// an error without a code, and this way `?` in a resolver always goes through `From` below.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated(String),
    /// The reason goes to the log; the client learns only that it may not.
    Forbidden {
        reason: String,
    },
    BadUserInput {
        field: String,
        reason: String,
    },
    NotFound(String),
    Conflict(String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl ApiError {
    pub fn bad_input(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ApiError::BadUserInput {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::Forbidden { .. } => "you are not allowed to do this".into(),
            ApiError::BadUserInput { field, reason } => format!("{field}: {reason}"),
            ApiError::NotFound(what) => format!("{what} was not found"),
            ApiError::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden { .. } => "FORBIDDEN",
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        // Writes check for duplicates first; a unique violation here is a concurrent write
        // that got in between, which is the client's conflict, not our fault.
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            return ApiError::Conflict(
                "that already exists (written concurrently); read it and retry".into(),
            );
        }
        ApiError::Internal(anyhow::Error::new(e).context("database operation failed"))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Internal(cause) => {
                tracing::error!(error.cause_chain = ?cause, "internal error");
            }
            ApiError::Forbidden { reason } => {
                tracing::info!(refusal.reason = %reason, "refused");
            }
            _ => {}
        }
        let code = e.code();
        let field = match &e {
            ApiError::BadUserInput { field, .. } => Some(field.clone()),
            _ => None,
        };
        async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(f) = &field {
                ext.set("field", f.as_str());
            }
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
