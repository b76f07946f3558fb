//! What a program sees of brisk's work: counters (`stats`) and events with the OpenTelemetry
//! database-client attribute names (`events`).

pub mod events;
pub mod stats;
