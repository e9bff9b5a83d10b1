//! End-to-end tests: the gateway on 127.0.0.1:0 with real TLS, a real sink upstream, real files.

mod config_files;
mod delivery;
mod engine;
mod fuzz_regressions;
mod hmac_config;
mod ingress;
mod process;
mod redis_outage;
mod reload;
mod replicas;
mod schemes;
mod support;
