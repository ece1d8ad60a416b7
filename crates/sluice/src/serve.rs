//! `sluice serve`: wiring the crates together and running until SIGINT or SIGTERM.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use sluice_api::admin::Reload;
use sluice_api::dkim::Keyring;
use sluice_api::snippets::SnippetStore;
use sluice_api::state::SiteCheck;
use sluice_api::templates::TemplateStore;
use sluice_api::{AppState, Keys};
use sluice_core::config::Config;
use sluice_core::{IdGenerator, Store};
use sluice_delivery::smtp::{opportunistic_config, verified_config};
use sluice_delivery::{BounceRules, Egress, Engine, Providers, Router, TlsClients};
use sluice_events::{run_retention, Dispatcher, EventLog, WebhookStore};
use sluice_queue::{run_scheduler, Spool};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

/// How many due messages may wait between the scheduler and the delivery engine.
const HANDOFF_CAPACITY: usize = 4096;

/// Runs the server with the configuration at `path`, or the defaults.
pub async fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let store = Store::open(&config.spool.path, config.spool.cache_bytes)
        .with_context(|| format!("opening the spool at {}", config.spool.path.display()))?;
    let log = EventLog::open(&store)?;
    let webhooks = WebhookStore::open(&store)?;
    let spool = Spool::open(&store, log.clone(), config.queue.clone())?;
    let keys = Keys::open(&store, &config.api_keys)?;
    ensure_a_key(&store, &keys).await?;
    // No count here: sled counts a tree by walking it, which a million queued messages make slow.
    tracing::info!(spool = %config.spool.path.display(), "spool open");

    let dispatcher = Dispatcher::new(
        log.clone(),
        store.clone(),
        webhooks.clone(),
        config.webhooks.clone(),
    )
    .context("building the webhook HTTP client")?;
    dispatcher.start_all()?;
    tokio::spawn(run_retention(log.clone(), config.events.clone()));
    let engine = start_delivery(&config, spool.clone())?;
    let sites: SiteCheck = {
        let engine = engine.clone();
        Arc::new(move |name: &str| engine.is_site(name))
    };
    let reload = reloader(path.clone(), engine);
    tokio::spawn(reload_on_hangup(reload.clone()));

    let mut pools: HashSet<String> = config
        .sending_ips
        .iter()
        .map(|ip| ip.pool.to_ascii_lowercase())
        .collect();
    pools.insert("default".into());
    let state = AppState {
        store: store.clone(),
        spool,
        log,
        webhooks,
        dispatcher,
        keys,
        keyring: Keyring::open(&store)?,
        ids: Arc::new(IdGenerator::new()),
        config: Arc::new(config.api.clone()),
        pools: Arc::new(pools),
        sites,
        queue: Arc::new(config.queue.clone()),
        templates: TemplateStore::open(&store)?,
        snippets: SnippetStore::open(&store)?,
        reload,
    };
    serve_api(&config, state).await?;
    store
        .flush_now()
        .context("flushing the spool at shutdown")?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the scheduler and the delivery engine.
fn start_delivery(config: &Config, spool: Spool) -> anyhow::Result<Engine> {
    let delivery = &config.delivery;
    let providers = Providers::load(delivery.providers_file.as_deref())?;
    providers.check_shaping(&config.shaping)?;
    let rules = BounceRules::load(delivery.bounce_rules_file.as_deref())?;
    let router = Router::new(
        &config.dns,
        config.routes.clone(),
        delivery.mx_port,
        providers,
    )
    .context("configuring the DNS resolver")?;
    let egress = Egress::new(&config.sending_ips, &delivery.ehlo_hostname);
    let engine = Engine::new(
        spool.clone(),
        router,
        egress,
        config.shaping.clone(),
        rules,
        tls_clients(config)?,
    );
    let (handoff, due) = mpsc::channel(HANDOFF_CAPACITY);
    tokio::spawn(run_scheduler(spool, handoff));
    tokio::spawn(engine.clone().run(due));
    Ok(engine)
}

/// TLS for outbound SMTP. A configured CA file must load; without one, a host with no system
/// roots only loses `required` sites, which then fail temporarily.
fn tls_clients(config: &Config) -> anyhow::Result<TlsClients> {
    let opportunistic = opportunistic_config().context("building the SMTP TLS configuration")?;
    let ca_file = config.delivery.tls_ca_file.as_deref();
    let verified = match verified_config(ca_file) {
        Ok(verified) => Some(verified),
        Err(e) if ca_file.is_some() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "no verifying TLS configuration; sites requiring TLS will be deferred");
            None
        }
    };
    Ok(TlsClients {
        opportunistic: Some(opportunistic),
        verified,
    })
}

/// Re-reads the configuration file (when there is one) and applies it to the engine.
fn reloader(path: Option<PathBuf>, engine: Engine) -> Reload {
    Arc::new(move || {
        let config = match &path {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        engine.reload(&config).map_err(|e| e.to_string())?;
        let origin = path
            .as_deref()
            .map_or("(defaults)".into(), |p| p.display().to_string());
        tracing::info!(config = %origin, "configuration reloaded");
        Ok(())
    })
}

/// Reloads on every SIGHUP; a refused configuration is logged and the old rules stay.
async fn reload_on_hangup(reload: Reload) {
    let hangup = tokio::signal::unix::SignalKind::hangup();
    let Ok(mut signal) = tokio::signal::unix::signal(hangup) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API instead");
        return;
    };
    while signal.recv().await.is_some() {
        if let Err(reason) = reload() {
            tracing::warn!(%reason, "reload refused; the running configuration stays");
        }
    }
}

/// With no key configured or stored, makes one and prints it once, so a first start is usable.
async fn ensure_a_key(store: &Store, keys: &Keys) -> anyhow::Result<()> {
    if keys.any() {
        return Ok(());
    }
    let key = keys.generate("generated at first start")?;
    store.durable().await?;
    println!("No API key was configured, so one was created. It is shown only this once:");
    println!("  {key}");
    println!("Send it as the Authorization header of API requests.");
    Ok(())
}

async fn serve_api(config: &Config, state: AppState) -> anyhow::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(sluice_api::router(state));
    // The peer address reaches handlers so keys with `valid_ips` can be checked.
    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(app);
    let listen = config.api.listen;
    if let (Some(cert), Some(key)) = (&config.api.tls_cert, &config.api.tls_key) {
        let tls = RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "loading the API certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        tracing::info!(%listen, "API listening (HTTPS)");
        return axum_server::bind_rustls(listen, tls)
            .handle(handle)
            .serve(service)
            .await
            .context("serving the API");
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the API listener to {listen}"))?;
    tracing::info!(%listen, "API listening");
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
