//! Marshal: places mission workloads across allied Kubernetes clusters under data-sovereignty rules.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod controller;
pub mod error;
pub mod explain_cli;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod permissions;
pub mod placement;
pub mod plan;
pub mod policy;
pub mod reflect;
pub mod retry;
pub mod signing;
pub mod sync;
