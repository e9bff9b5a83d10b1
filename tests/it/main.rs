//! End-to-end tests: the gateway on 127.0.0.1:0 with real TLS, a real sink upstream, real files.

mod acme;
mod body_budget;
mod cluster;
mod config_check;
mod config_files;
mod console;
mod delivery;
mod deploy;
mod disk_full;
mod edge;
mod engine;
mod filters;
mod fuzz_regressions;
mod hmac_config;
mod ingress;
mod mtls;
mod process;
mod redis_outage;
mod reload;
mod replicas;
mod request_path;
mod schemes;
mod support;
mod telemetry;
