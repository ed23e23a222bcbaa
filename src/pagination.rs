//! Keyset pagination: pages of rows ordered by id, for every list the API serves (the
//! directory, returns, grants, the access log). The GraphQL layer turns them into Relay
//! connections (`graphql::connection`).

/// A page of rows ordered by id, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

impl<T> Page<T> {
    /// Builds a page from up to `first + 1` rows: the extra row only says more follow.
    pub fn from_overfetch(mut rows: Vec<T>, first: usize) -> Self {
        let has_next = rows.len() > first;
        rows.truncate(first);
        Page {
            items: rows,
            has_next,
        }
    }
}

/// Where a page starts: after the row with this id, if any, and how many rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageArgs {
    pub first: u64,
    pub after: Option<i64>,
}
