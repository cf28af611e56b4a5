//! `huddle serve --check-config`: everything `huddle serve` would refuse at start, found
//! without serving — the listener addresses, the OpenTelemetry variables, and the store
//! (opened and asked to take a write). Deployments run it against their manifests' args
//! and env (a bad flag fails the check, not the rollout).

use crate::serve::ServeArgs;

/// The values `OTEL_TRACES_SAMPLER` may take (the OpenTelemetry SDK's).
const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// Checks `args` and the environment; prints `configuration ok` or every reason.
pub async fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let mut reasons = otel_reasons();
    match args.addrs() {
        Ok(addrs) => {
            let config = args.node_config(&addrs);
            if let Err(why) = store_reason(&config).await {
                reasons.push(why);
            }
            match args.cluster_config() {
                Ok(Some(cluster)) => {
                    if let Err(e) = huddle_node::check_cluster(&cluster).await {
                        reasons.push(format!("{:#}", anyhow::Error::new(e)));
                    }
                }
                Ok(None) => {}
                Err(e) => reasons.push(format!("{e:#}")),
            }
        }
        Err(e) => reasons.push(format!("{e:#}")),
    }
    if reasons.is_empty() {
        println!("configuration ok");
        return Ok(());
    }
    for reason in &reasons {
        eprintln!("huddle: configuration: {reason}");
    }
    anyhow::bail!(
        "configuration invalid ({} problem{})",
        reasons.len(),
        if reasons.len() == 1 { "" } else { "s" }
    )
}

/// The store opens (creating its files if new, reaching the server of a PostgreSQL
/// URL) and takes a write.
async fn store_reason(config: &huddle_node::NodeConfig) -> Result<(), String> {
    let store = huddle_node::open_store(config)
        .await
        .map_err(|e| format!("store: {:#}", anyhow::Error::new(e)))?;
    store
        .check_writable()
        .await
        .map_err(|e| format!("store: does not take writes: {e}"))
}

/// The standard OpenTelemetry variables this node reads, when set.
fn otel_reasons() -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(endpoint) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let scheme_ok = endpoint
            .parse::<tonic::transport::Uri>()
            .ok()
            .and_then(|u| u.scheme_str().map(str::to_owned))
            .is_some_and(|s| s == "http" || s == "https");
        if !scheme_ok {
            reasons.push(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT {endpoint:?} is not an http(s) URL like http://collector:4317"
            ));
        }
    }
    if let Some(sampler) = var("OTEL_TRACES_SAMPLER")
        && !SAMPLERS.contains(&sampler.as_str())
    {
        reasons.push(format!(
            "OTEL_TRACES_SAMPLER {sampler:?} is not one of {}",
            SAMPLERS.join(", ")
        ));
    }
    if let Some(ratio) = var("OTEL_TRACES_SAMPLER_ARG")
        && !ratio.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
    {
        reasons.push(format!(
            "OTEL_TRACES_SAMPLER_ARG {ratio:?} is not a ratio between 0 and 1"
        ));
    }
    reasons
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
