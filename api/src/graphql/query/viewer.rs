use async_graphql::{Context, Object, Result};

use crate::auth::guard::principal;
use crate::graphql::types::viewer::Viewer;

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Who the token speaks for.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(Viewer(principal(ctx)?.clone()))
    }
}
