//! `/docs` and `/redoc` load nothing from another origin.

use testkit::TestApp;

#[tokio::test]
async fn docs_and_redoc_load_only_same_origin_assets() {
    let app = TestApp::spawn(&[]).await;
    for (page, needle) in [
        ("/docs", "swagger-ui"),
        ("/redoc", "Redoc.init('/openapi.json'"),
    ] {
        let resp = app.http.get(app.url(page)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{page}: {ct}");
        let base = resp.url().clone();
        let html = resp.text().await.unwrap();
        assert!(html.contains(needle), "{page}: {html}");
        let assets = asset_refs(&html);
        assert!(!assets.is_empty(), "{page} references no assets");
        for asset in assets {
            assert!(
                !asset.contains("//"),
                "{page} loads {asset} from another origin"
            );
            let url = base.join(&asset).unwrap();
            let resp = app.http.get(url.clone()).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{page}: {url}");
        }
    }
    let js = app
        .http
        .get(app.url("/redoc/redoc.standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("Redoc"));
}

/// `src="..."` and `href="..."` values of a page.
fn asset_refs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            if let Some(end) = piece.find('"') {
                out.push(piece[..end].to_owned());
            }
        }
    }
    out
}
