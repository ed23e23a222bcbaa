//! Tracing spans for a GraphQL request, inside the HTTP request's span: parsing, and
//! execution (validation included) naming the operation and its root fields. Made by the
//! HTTP layer, not by a schema extension: with any extension in the schema, async-graphql
//! sends every field's resolution through the extension chain (a boxed future per field),
//! and a page of a thousand objects paid for that, and before that for a span per field, more
//! than for resolving them (issue 13). Where time goes below a root field, the statement log
//! (`anchorfed::sql`) says.

use async_graphql::parser::types::{ExecutableDocument, Selection};
use tracing::Span;

/// The span parsing a document runs in.
pub fn parse() -> Span {
    tracing::info_span!(target: "async_graphql::graphql", "parse")
}

/// The span an operation is validated and executed in.
pub fn execute(doc: Option<&ExecutableDocument>, operation: Option<&str>) -> Span {
    let fields = doc.map(root_fields);
    tracing::info_span!(
        target: "async_graphql::graphql",
        "execute",
        operation,
        fields = fields.as_deref(),
    )
}

/// `returns,networks`: the fields at the root of every operation in the document, in order.
fn root_fields(doc: &ExecutableDocument) -> String {
    let mut names: Vec<&str> = vec![];
    for (_, op) in doc.operations.iter() {
        for item in &op.node.selection_set.node.items {
            let name = match &item.node {
                Selection::Field(f) => f.node.name.node.as_str(),
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => "...",
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_execution_span_names_each_root_field_once() {
        let doc = async_graphql::parser::parse_query(
            "query A { returns(first: 1) { nodes { id } } networks(first: 1) { nodes { key } } \
             again: returns(first: 2) { totalCount } ... on Query { region(code: \"x\") { name } } }",
        )
        .unwrap();
        assert_eq!(root_fields(&doc), "returns,networks,...");
    }
}
