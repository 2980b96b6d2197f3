//! `chatgate health`: asks a running gateway's `GET /healthz` and exits 0 only on a 2xx answer,
//! so a container image needs no curl for its health check.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long the check may take in all.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Calls `url` once; `Ok` with the answer's first line when it is 2xx.
pub async fn check(url: &str) -> Result<String> {
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let response = client.get(url).send().await.map_err(|e| anyhow::anyhow!("{url}: {}", e.without_url()))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("{url}: reading the answer"))?;
    if !status.is_success() {
        bail!("{url}: {status}");
    }
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
