//! Relay connections: `first` is required (1 to 100), cursors are opaque, and every
//! connection has `totalCount`, computed only when asked for.

use async_graphql::connection::{Connection, CursorType, Edge};
use async_graphql::{OutputType, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;
use crate::pagination::{Page, PageArgs};

pub const MAX_PAGE: i32 = 100;

/// A cursor naming the last row seen, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCursor(pub i64);

/// A cursor that this API did not issue.
#[derive(Debug, thiserror::Error)]
#[error("not a cursor this API issued")]
pub struct BadCursor;

impl CursorType for IdCursor {
    type Error = BadCursor;

    fn decode_cursor(s: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor;
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let id = text
            .strip_prefix("id:")
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(bad)?;
        Ok(IdCursor(id))
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("id:{}", self.0))
    }
}

/// Checks `first` and decodes `after` into the arguments a service function takes.
pub fn page_args(first: i32, after: Option<&str>) -> Result<PageArgs, ApiError> {
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(ApiError::bad_input(
            "first",
            format!("must be between 1 and {MAX_PAGE}, got {first}"),
        ));
    }
    let after = after
        .map(IdCursor::decode_cursor)
        .transpose()
        .map_err(|e| ApiError::bad_input("after", e))?
        .map(|c| c.0);
    Ok(PageArgs {
        first: first as u64,
        after,
    })
}

/// Builds a connection from a page, given each item's id and its GraphQL node.
pub fn connect<T, N, F>(
    page: Page<T>,
    after: Option<i64>,
    fields: F,
    mut node: impl FnMut(T) -> (i64, N),
) -> Connection<IdCursor, N, F>
where
    N: OutputType,
    F: async_graphql::ObjectType,
{
    let mut c = Connection::with_additional_fields(after.is_some(), page.has_next, fields);
    c.edges.extend(page.items.into_iter().map(|t| {
        let (id, n) = node(t);
        Edge::new(IdCursor(id), n)
    }));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let c = IdCursor(42).encode_cursor();
        assert_eq!(IdCursor::decode_cursor(&c).ok(), Some(IdCursor(42)));
        assert!(IdCursor::decode_cursor("42").is_err());
        assert!(IdCursor::decode_cursor(&URL_SAFE_NO_PAD.encode("x:1")).is_err());
    }

    #[test]
    fn first_is_bounded() {
        assert!(page_args(0, None).is_err());
        assert!(page_args(101, None).is_err());
        assert!(page_args(100, None).is_ok());
    }
}
