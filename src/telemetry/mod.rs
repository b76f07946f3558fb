//! What a program sees of brisk's work: counters (`stats`), events with the OpenTelemetry
//! database-client attribute names (`events`), and OpenTelemetry spans and metrics exported by
//! brisk itself (`otel`).

pub mod events;
pub mod otel;
pub mod stats;
