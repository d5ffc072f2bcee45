//! The OpenAPI description at `/api/v1/openapi.json` and the routes that exist agree: every
//! documented path and method answers (not with the router's 404 or 405), every other method on
//! a documented path is refused with 405, and paths that are not documented are not routed.

use std::collections::BTreeSet;
use std::time::Duration;

use gridwatch_gateway::config::{Config, Secrets};
use gridwatch_gateway::registry::Registry;
use gridwatch_gateway::Gateway;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const TOKEN: &str = "openapi-test-token";

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// A gateway on a free port, with no broker to reach (it keeps retrying, which this test does
/// not mind) and its files in `dir`.
async fn gateway(dir: &std::path::Path) -> anyhow::Result<Gateway> {
    let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse()?;
    config.mqtt.port = unused.port();
    config.journal.path = dir.join("journal");
    config.store.local.path = dir.join("tsdb");
    config.store.dead_letter_path = dir.join("dead-letter");
    let registry = Registry::parse(
        "[community]\nid = \"yg\"\nname = \"n\"\n[[buildings]]\nid = \"b1\"\nname = \"n\"\n\
         [[grids]]\nid = \"g1\"\nname = \"n\"\n[[devices]]\nid = \"mh-1\"\nkind = \"manhole\"\n\
         building = \"b1\"\ngrid = \"g1\"\nlocation = \"x\"\n",
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let secrets = Secrets {
        api_token: Some(TOKEN.into()),
        ..Secrets::default()
    };
    Gateway::start(config, registry, secrets).await
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "no-such-thing"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the router itself refused the request: its 404 has an empty body (a handler's 404
/// is `{"error": ...}`), and handlers never answer 405.
async fn routed(response: reqwest::Response) -> bool {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    status != StatusCode::METHOD_NOT_ALLOWED
        && !(status == StatusCode::NOT_FOUND && body.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_description_lists_exactly_the_routes_that_exist() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = gateway(dir.path()).await?;
    let base = format!("http://{}", gw.http_addr());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    let served = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await?
        .bytes()
        .await?;
    let served: Value = serde_json::from_slice(&served)?;
    let generated = serde_json::to_value(gridwatch_gateway::http::openapi())?;
    assert_eq!(
        served, generated,
        "the served description is the generated one"
    );
    assert_eq!(served["openapi"], "3.1.0");

    let paths = served["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id),
                "operationId {id:?} of {method} {path} is not unique"
            );
            let writes = method != "get";
            let secured = op
                .get("security")
                .is_some_and(|s| s[0].get("bearer").is_some());
            assert_eq!(
                secured, writes,
                "{method} {path}: writes, and only writes, need the token"
            );
        }
    }
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let expected: BTreeSet<String> = [
        "GET /",
        "GET /screen/app.js",
        "GET /screen/style.css",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/events",
        "GET /api/v1/overview",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/{id}",
        "POST /api/v1/alerts/{id}/{action}",
        "GET /api/v1/kinds",
        "GET /api/v1/rules",
        "GET /api/v1/rules/{rule}/why/{device}",
        "GET /api/v1/silences",
        "POST /api/v1/silences",
        "DELETE /api/v1/silences/{id}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, expected);

    for (path, item) in paths {
        let url = format!("{base}{}", concrete(path));
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let response = client
                .request(m, &url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await?;
            if method == "head" && item.get("get").is_some() {
                // axum answers HEAD wherever it answers GET, without the body that would tell
                // a handler's 404 from the router's.
                assert_ne!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "HEAD {path}"
                );
            } else if item.get(method).is_some() {
                assert!(
                    routed(response).await,
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }

    for path in [
        "/api/v1/devices",
        "/api/v2/alerts",
        "/api/v1/alerts/a/acknowledge/more",
        "/api/v1/openapi.yaml",
        "/screen/other.js",
    ] {
        let response = client.get(format!("{base}{path}")).send().await?;
        assert!(
            !routed(response).await,
            "{path} is routed but not documented"
        );
    }
    gw.shutdown().await;
    Ok(())
}

/// Routes added with a plain `.route(...)` would be served but missing from the description;
/// every route goes through `routes!` so that the two cannot differ.
#[test]
fn every_route_is_registered_with_its_description() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a source file");
        assert!(
            !text.contains(".route(") && !text.contains(".nest("),
            "{}: register routes with `.routes(routes!(handler))`",
            path.display()
        );
    }
}
