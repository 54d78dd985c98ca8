//! The collector (`siphon serve`): configuration, ingest listeners feeding one pipeline thread
//! through bounded queues, the HTTP API and Prometheus metrics; plus the call exports (SIP
//! messages, pcap, WAV) that the command line shares.
#![forbid(unsafe_code)]

pub mod export;
pub mod api;
pub mod config;
