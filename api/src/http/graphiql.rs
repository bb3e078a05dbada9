//! GraphiQL, served from the binary: the page and the assets `build.rs` embedded
//! (GraphiQL 3 and React 18, from their npm packages). Nothing comes from a CDN, so the
//! console works on intranets and networks that cannot reach one.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The assets' folder: versioned, so that they can be cached for good.
pub const ASSETS: &str = "/graphiql/3.8.3";

macro_rules! asset {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/graphiql/", $name)).as_slice()
    };
}

/// `GET /graphiql/3.8.3/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (bytes, content_type) = match file.as_str() {
        "graphiql.min.js" => (asset!("graphiql.min.js"), "text/javascript; charset=utf-8"),
        "graphiql.min.css" => (asset!("graphiql.min.css"), "text/css; charset=utf-8"),
        "react.production.min.js" => (
            asset!("react.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "react-dom.production.min.js" => (
            asset!("react-dom.production.min.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response()
}

/// The console: queries over HTTP, subscriptions over `/graphql/ws`; the token goes in
/// the headers editor (`{"Authorization": "Bearer …"}`) and is kept in the browser.
pub fn page() -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Tierwise · GraphiQL</title>
  <link rel="stylesheet" href="{ASSETS}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSETS}/react.production.min.js"></script>
  <script src="{ASSETS}/react-dom.production.min.js"></script>
  <script src="{ASSETS}/graphiql.min.js"></script>
  <script>
    const url = new URL('/graphql', location.href).href;
    const fetcher = GraphiQL.createFetcher({{
      url,
      subscriptionUrl: url.replace(/^http/, 'ws') + '/ws',
    }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{
        fetcher,
        shouldPersistHeaders: true,
        defaultEditorToolsVisibility: 'headers',
        defaultHeaders: '{{\n  "Authorization": "Bearer "\n}}',
      }}),
    );
  </script>
</body>
</html>
"#
    ))
}
