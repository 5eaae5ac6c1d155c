//! Marshal: places mission workloads across allied Kubernetes clusters under data-sovereignty rules.
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod placement;
pub mod plan;
pub mod sync;
