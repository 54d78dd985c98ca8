//! The collector (`siphon serve`): configuration, ingest listeners feeding one pipeline thread
//! through bounded queues, the HTTP API and Prometheus metrics; plus the call exports (SIP
//! messages, pcap, WAV) that the command line shares.
#![forbid(unsafe_code)]

pub mod api;
pub mod collector;
pub mod config;
pub mod export;
pub mod hep_tls;
pub mod metrics;
pub mod serve;
