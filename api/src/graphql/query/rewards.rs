use async_graphql::{Context, Object, Result};

use crate::auth::Role;
use crate::auth::guard::principal;
use crate::domain::DomainError;
use crate::graphql::error::Gql;
use crate::graphql::types::reward::Reward;
use crate::store::{Db, rewards};

#[derive(Default)]
pub struct RewardQuery;

#[Object]
impl RewardQuery {
    /// By cost, then name. Everyone sees the active rewards (an app shows them to its
    /// customer); inactive ones are for those who read the program.
    async fn rewards(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_inactive: Option<bool>,
    ) -> Result<Vec<Reward>> {
        let include_inactive = include_inactive.unwrap_or(false);
        // Inactive rewards are the catalogue's drafts and retired items: for the
        // program's own people, not for partners' shops or customers' apps.
        let caller = principal(ctx)?;
        if include_inactive && !matches!(caller.role, Role::Admin | Role::Staff) {
            return Err(DomainError::Forbidden(
                "includeInactive is for staff and admins".into(),
            ))
            .gql();
        }
        Ok(rewards::list(ctx.data::<Db>()?.conn(), include_inactive)
            .await
            .gql()?
            .into_iter()
            .map(Reward)
            .collect())
    }
}
