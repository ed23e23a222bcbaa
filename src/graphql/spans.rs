//! Tracing spans for a GraphQL request: parsing, validation, execution and each root field,
//! inside the HTTP request's span. Not one per nested field: a page of a thousand objects
//! made a thousand spans, each formatting its path, which cost more than resolving them
//! (issue 13). Where time goes below a root field, the statement log (`anchorfed::sql`) says.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextResolve,
    NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use tracing::Instrument as _;

pub struct RequestSpans;

impl ExtensionFactory for RequestSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestSpans)
    }
}

#[async_trait::async_trait]
impl Extension for RequestSpans {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let span = tracing::info_span!(target: "async_graphql::graphql", "parse");
        next.run(ctx, query, variables).instrument(span).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let span = tracing::info_span!(target: "async_graphql::graphql", "validation");
        next.run(ctx).instrument(span).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let span = tracing::info_span!(target: "async_graphql::graphql", "execute", operation = operation_name);
        next.run(ctx, operation_name).instrument(span).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        let span = tracing::info_span!(
            target: "async_graphql::graphql",
            "field",
            name = info.name,
        );
        next.run(ctx, info).instrument(span).await
    }
}
