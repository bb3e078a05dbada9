//! Relay cursor connections: `edges { cursor node }`, `nodes`, `pageInfo`, `totalCount`.

use async_graphql::SimpleObject;

use crate::store::paging::Page;

#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// Declares `<Name>Connection` and `<Name>Edge` for a node type, with a description of
/// its `totalCount` where counting is not simply exact.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty $(, total_count: $doc:literal)?) => {
        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $connection {
            pub edges: Vec<$edge>,
            pub nodes: Vec<$node>,
            pub page_info: $crate::graphql::types::connection::PageInfo,
            $(#[doc = $doc])?
            pub total_count: i64,
        }

        impl $connection {
            pub fn from_page<M>(
                page: $crate::store::paging::Page<M>,
                cursor: impl Fn(&M) -> String,
                node: impl Fn(M) -> $node,
            ) -> Self {
                let (edges, page_info, total_count) =
                    $crate::graphql::types::connection::parts(page, cursor);
                let edges: Vec<$edge> = edges
                    .into_iter()
                    .map(|(cursor, model)| $edge {
                        cursor,
                        node: node(model),
                    })
                    .collect();
                Self {
                    nodes: edges.iter().map(|e| e.node.clone()).collect(),
                    edges,
                    page_info,
                    total_count,
                }
            }
        }
    };
}
pub(crate) use connection;

/// A page's rows with their cursors, its `PageInfo` and its total count.
pub fn parts<M>(page: Page<M>, cursor: impl Fn(&M) -> String) -> (Vec<(String, M)>, PageInfo, i64) {
    let edges: Vec<(String, M)> = page.items.into_iter().map(|m| (cursor(&m), m)).collect();
    let page_info = PageInfo {
        has_next_page: page.has_next_page,
        has_previous_page: page.has_previous_page,
        start_cursor: edges.first().map(|(c, _)| c.clone()),
        end_cursor: edges.last().map(|(c, _)| c.clone()),
    };
    (edges, page_info, page.total_count as i64)
}
