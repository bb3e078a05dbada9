//! Writing the demo data set's history in bulk (`crate::demo` generates it).

use std::collections::HashMap;

use entity::{customer, interaction, points_entry};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::DomainResult;

/// Inserts the interactions and ledger entries, 500 rows a statement, and sets each
/// customer's balance to its last entry's `balanceAfter`. No events: the demo is loaded
/// before anyone listens.
pub async fn insert_history(
    db: &impl ConnectionTrait,
    history: Vec<interaction::Model>,
    ledger: Vec<points_entry::Model>,
) -> DomainResult<()> {
    for chunk in history.chunks(500) {
        interaction::Entity::insert_many(chunk.iter().cloned().map(interaction::ActiveModel::from))
            .exec_without_returning(db)
            .await?;
    }
    for chunk in ledger.chunks(500) {
        points_entry::Entity::insert_many(
            chunk.iter().cloned().map(points_entry::ActiveModel::from),
        )
        .exec_without_returning(db)
        .await?;
    }
    let mut last: HashMap<Uuid, i64> = HashMap::new();
    for entry in &ledger {
        last.insert(entry.customer_id, entry.balance_after);
    }
    for (id, balance) in last {
        customer::Entity::update_many()
            .col_expr(customer::Column::PointsBalance, Expr::value(balance))
            .filter(customer::Column::Id.eq(id))
            .exec(db)
            .await?;
    }
    Ok(())
}
